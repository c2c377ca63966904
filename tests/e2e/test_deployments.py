"""End to end: the deployments of deployments/prefect.yaml, registered by `make deploy` against the session's
Prefect test server, and one `migrate` run executed by a real process worker (`make worker`) on the e2e moto
server.

Both Makefile recipes run as they are, without their venv-stamp prerequisite (`STAMP=`) and with this
interpreter's bin directory (`BIN=`), so the test never reinstalls anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

POOL = "region-migration"
DEPLOYMENTS = ("migrate", "sync", "validate", "cutover", "teardown")
SUFFIX = "deploy"  # not test_cli's "e2e" nor test_ui's "ui": every resource this module makes is its own
RUN_TIMEOUT = 240


def make(target: str) -> list[str]:
    """The Makefile's recipe for `target`, run as is (no venv stamp, this interpreter's bin directory)."""
    return [
        "make",
        "--no-print-directory",
        "-s",
        "-C",
        str(ROOT),
        target,
        "STAMP=",
        f"BIN={Path(sys.executable).parent}",
    ]


@pytest.fixture(scope="module")
def deployed(cli_env: dict[str, str]) -> dict[str, str]:
    """`make deploy` against the test server: the work pool plus every deployment of the prefect.yaml."""
    proc = subprocess.run(
        make("deploy"), cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in DEPLOYMENTS:
        assert f"Deployment '{name}/{name}' successfully created" in " ".join(proc.stdout.split()), proc.stdout
    return cli_env


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def test_make_deploy_registers_every_deployment_with_typed_parameters_and_schedules(deployed: dict[str, str]) -> None:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    with _client() as client:
        pool = client.read_work_pool(POOL)
        assert pool.type == "process"
        found = {name: client.read_deployment_by_name(f"{name}/{name}") for name in DEPLOYMENTS}

    for name, dep in found.items():
        assert dep.entrypoint == f"flows/{name}.py:{name}"
        assert dep.work_pool_name == POOL
        # The pull step runs this checkout: the worker's flow run starts in the project root.
        assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
        schema = dep.parameter_openapi_schema
        props = schema["properties"]
        # Which migration and which backend: one typed section of the form, shared by every flow.
        assert props["options"]["$ref"] == "#/definitions/RunOptions"
        options = schema["definitions"]["RunOptions"]["properties"]
        assert options["config_path"]["type"] == "string"
        assert {"type": "string"} in options["endpoint_url"]["anyOf"]
        assert {"type": "null"} in options["endpoint_url"]["anyOf"]
        assert options["use_aws"]["type"] == "boolean"
        # The UI's run form explains every parameter.
        assert all(p.get("description") for p in [*props.values(), *options.values()]), name
        assert dep.parameters["options"]["config_path"] == "config/migration.example.json"
        assert (ROOT / dep.parameters["options"]["config_path"]).is_file()
    assert found["migrate"].parameter_openapi_schema["properties"]["validation_level"]["enum"] == ["quick", "full"]
    assert found["validate"].parameter_openapi_schema["properties"]["level"]["enum"] == ["quick", "full"]
    assert found["teardown"].parameter_openapi_schema["properties"]["delete_target_data"]["type"] == "boolean"

    for name in ("migrate", "cutover", "teardown"):
        assert found[name].schedules == [], f"{name} is on demand"
    (sync_schedule,) = found["sync"].schedules
    assert isinstance(sync_schedule.schedule, IntervalSchedule)
    assert sync_schedule.schedule.interval == timedelta(minutes=15)
    (validate_schedule,) = found["validate"].schedules
    assert isinstance(validate_schedule.schedule, CronSchedule)
    assert validate_schedule.schedule.cron == "0 * * * *"

    # sync runs never overlap: one slot, and a run due while another holds it is cancelled, not queued.
    limit = found["sync"].global_concurrency_limit
    assert limit is not None and limit.limit == 1
    assert found["sync"].concurrency_options is not None
    assert found["sync"].concurrency_options.collision_strategy.value == "CANCEL_NEW"
    for name in ("migrate", "validate", "cutover", "teardown"):
        assert found[name].global_concurrency_limit is None


def _stop_schedules() -> None:
    """The worker below must run our migrate run only: pause the scheduled deployments, drop their runs."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with _client() as client:
        ids = [client.read_deployment_by_name(f"{n}/{n}").id for n in ("sync", "validate")]
        for dep_id in ids:
            client.pause_deployment(dep_id)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        for run in runs:
            client.delete_flow_run(run.id)


@pytest.fixture
def worker(deployed: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """`make worker` in its own process group, polling every second; always stopped, with its log kept."""
    _stop_schedules()
    log = tmp_path / "worker.log"
    env = {**deployed, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            make("worker"), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue


def test_process_worker_runs_the_migrate_deployment_to_a_go_report(
    worker: Path, moto_url: str, seeded_config: Path, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    config = json.loads(seeded_config.read_text())
    config["environmentSuffix"] = SUFFIX
    config_path = tmp_path / "migration-deploy.json"
    config_path.write_text(json.dumps(config))
    report_path = tmp_path / "report.json"

    run = run_deployment(
        "migrate/migrate",
        parameters={
            "options": {"config_path": str(config_path), "endpoint_url": moto_url},
            "report_path": str(report_path),
            "validation_level": "quick",
        },
        timeout=0,
        as_subflow=False,
    )
    assert isinstance(run, FlowRun)
    deadline = time.monotonic() + RUN_TIMEOUT
    with _client() as client:
        while True:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                break
            assert time.monotonic() < deadline, (
                f"flow run still {state} after {RUN_TIMEOUT} s:\n" + worker.read_text()[-4000:]
            )
            time.sleep(1)
        assert state.is_completed(), f"{state}\n" + worker.read_text()[-4000:]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )

    by_key = {a.key: a for a in artifacts if a.key}
    md = by_key[f"migration-report-e2e-{SUFFIX}"]
    assert md.type == "markdown"
    assert f"# Region migration e2e ({SUFFIX}): GO" in str(md.data)
    assert f"e2e-bucket-eu-20261128-{SUFFIX}" in str(md.data)
    assert f"migration-resources-e2e-{SUFFIX}" in by_key
    report = json.loads(report_path.read_text())
    assert report["verdict"]["decision"] == "GO"
    assert report["resources"]["s3Buckets"][0]["name"] == f"e2e-bucket-eu-20261128-{SUFFIX}"
