"""The task runner choice (thread / Dask) of every flow's CLI and of the settings, and what Dask needs of the tasks:
every step and every value the flows pass to one pickles (Dask ships them to worker processes by cloudpickle)."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from typing import Any

import cloudpickle
import pytest
from prefect import Task
from prefect.task_runners import ThreadPoolTaskRunner

import tasks
from config.model import EXAMPLE_CONFIG, ConfigError, load_config
from config.options import RunOptions
from config.settings import load_settings
from flows import cutover, migrate, sync, teardown, validate
from flows.common import run_flow, task_runner
from tasks.aws import Backend

MAINS = [migrate.main, sync.main, validate.main, cutover.main, teardown.main]
BAD = [
    (["--task-runner", "thread", "--dask-address", "tcp://h:8786"], "--dask-address needs --task-runner dask"),
    (["--dask-workers", "2"], "--dask-workers needs --task-runner dask"),
    (["--task-runner", "dask", "--dask-workers", "0"], "--dask-workers 0: give a whole number >= 1"),
    (
        ["--task-runner", "dask", "--dask-workers", "2", "--dask-address", "tcp://h:8786"],
        "--dask-workers starts a local cluster and --dask-address uses an existing one",
    ),
    (["--task-runner", "dask", "--dask-address", "h:8786"], "give the scheduler's address, e.g. tcp://host:8786"),
]


@pytest.mark.parametrize("main", MAINS, ids=lambda m: m.__module__)
@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_runner_choice_is_one_line_and_exit_2_before_anything_starts(
    main: Any, argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.emulator

    def no_emulator() -> str:
        raise AssertionError("nothing may start on bad input")

    monkeypatch.setattr(tasks.emulator, "ensure_emulator", no_emulator)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_dask_without_a_prefect_api_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker process would start a temporary Prefect server of its own: measured, every task run fails."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert migrate.main(["--task-runner", "dask"]) == 2
    assert "set PREFECT_API_URL" in capsys.readouterr().err


def test_the_runner_of_each_choice() -> None:
    from prefect_dask import DaskTaskRunner

    thread = task_runner("thread", None, None, 6)
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 6
    local = task_runner("dask", 4, None, 6)
    assert isinstance(local, DaskTaskRunner)
    # Worker processes share the flow's task slots: 6 threads over 4 processes -> 2 per process.
    assert local.cluster_kwargs == {"n_workers": 4, "processes": True, "threads_per_worker": 2}
    remote = task_runner("dask", None, "tcp://10.0.0.5:8786", 6)
    assert remote.address == "tcp://10.0.0.5:8786" and not remote.cluster_kwargs


def test_the_cli_applies_the_runner_with_with_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """One place calls every flow from its CLI: the flow object is the same, only its runner changes."""
    from prefect_dask import DaskTaskRunner

    seen: dict[str, Any] = {}

    class Called:
        def __call__(self, **params: Any) -> str:
            seen["params"] = params
            return "state"

    def with_options(**kwargs: Any) -> Called:
        seen["runner"] = kwargs["task_runner"]
        return Called()

    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setattr(migrate.migrate, "with_options", with_options)
    args = migrate.cli_parser("migrate", None).parse_args(["--task-runner", "dask", "--dask-workers", "3"])
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        assert run_flow(migrate.migrate, args, report_path="r.json") == "state"
    assert isinstance(seen["runner"], DaskTaskRunner)
    assert seen["runner"].cluster_kwargs["n_workers"] == 3
    assert seen["params"]["report_path"] == "r.json" and seen["params"]["return_state"] is True
    # The default stays the thread runner, with the flow's own thread count.
    default = migrate.cli_parser("migrate", None).parse_args([])
    run_flow(migrate.migrate, default)
    assert isinstance(seen["runner"], ThreadPoolTaskRunner) and seen["runner"]._max_workers == 6


def test_settings_choose_the_runner_and_refuse_a_bad_combination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_MIGRATION_TASK_RUNNER", "dask")
    monkeypatch.setenv("REGION_MIGRATION_DASK_ADDRESS", "tcp://sched:8786")
    settings = load_settings()
    assert (settings.task_runner, settings.dask_address) == ("dask", "tcp://sched:8786")
    monkeypatch.setenv("REGION_MIGRATION_TASK_RUNNER", "thread")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == (
        "REGION_MIGRATION_DASK_ADDRESS needs REGION_MIGRATION_TASK_RUNNER dask; "
        "add it, or drop REGION_MIGRATION_DASK_ADDRESS to run on threads"
    )


def _steps() -> list[Task[Any, Any]]:
    found: dict[int, Task[Any, Any]] = {}
    for info in pkgutil.walk_packages(tasks.__path__, "tasks."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Task):
                found[id(value)] = value
    return list(found.values())


def test_every_step_pickles_by_reference_and_closes_over_no_client() -> None:
    """Dask ships each task to a worker by cloudpickle: a step is found again by its module and name (the worker
    builds its own clients from the Backend argument), and no step holds a boto3 client in a closure."""
    steps = _steps()
    assert len(steps) > 20
    for step in steps:
        back = cloudpickle.loads(cloudpickle.dumps(step))
        assert back.fn.__qualname__ == step.fn.__qualname__ and back.fn.__module__ == step.fn.__module__
        cells = [c.cell_contents for c in (step.fn.__closure__ or ())]
        assert not [c for c in cells if type(c).__module__.startswith(("botocore", "boto3"))], step.name


def test_the_values_tasks_receive_pickle_small_without_clients() -> None:
    """Backend (a frozen dataclass), MigrationConfig and RunOptions (pydantic) round-trip through pickle, even after
    clients were built: the client cache is per process, never in the value."""
    backend = Backend(kind="endpoint", endpoint_url="http://127.0.0.1:1")
    backend.client("s3", "us-east-1")
    cfg = load_config(EXAMPLE_CONFIG)
    for value in (backend, cfg, RunOptions(endpoint_url="http://127.0.0.1:1"), cfg.s3_buckets[0], [(0, "a", "b")]):
        data = pickle.dumps(value)
        assert pickle.loads(data) == value
        assert len(data) < 4000 and b"botocore" not in data


def test_a_deployment_chooses_dask_through_its_job_variables() -> None:
    """deployments/prefect.yaml's migrate-dask sets the env the process worker gives the flow run; with it the flow
    module's runner (fixed at import) is a DaskTaskRunner (without it, the thread runner: test_settings)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    spec = yaml.safe_load((root / "deployments" / "prefect.yaml").read_text())
    dep = next(d for d in spec["deployments"] if d["name"] == "migrate-dask")
    env = dep["work_pool"]["job_variables"]["env"]
    assert dep["entrypoint"] == "flows/migrate.py:migrate"
    assert env == {"REGION_MIGRATION_TASK_RUNNER": "dask", "MALLOC_ARENA_MAX": "2"}
    # Every deployment's process starts with two malloc arenas (benchmarks/README.md, "flow memory").
    assert all(d["work_pool"]["job_variables"]["env"]["MALLOC_ARENA_MAX"] == "2" for d in spec["deployments"])
    probe = "import flows.migrate as m; print(type(m.migrate.task_runner).__name__)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGION_MIGRATION_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env={**clean, **env}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "DaskTaskRunner"
