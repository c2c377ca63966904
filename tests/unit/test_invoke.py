"""The validator runs asynchronously and is reported as it happened: passed, failed, not executed or unknown."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.names import resource_names
from tasks.provision import iam
from tasks.provision import lambda_ as lam_mod
from tasks.validate import invoke
from tasks.validate.invoke import interpret

REGION = "eu-west-1"
HANDLER_PATH = Path(__file__).resolve().parents[2] / "lambda" / "validator" / "handler.py"


def _load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validator_handler_for_invoke", HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


h = _load_handler()


def test_a_handler_result_counts_as_executed() -> None:
    payload = {
        "ok": False,
        "summary": "1 of 8 checks failed",
        "checks": [
            {"resource": "b", "check": "data.keys", "ok": False, "detail": "1 missing"},
            {"resource": "b", "check": "versioning", "ok": True, "detail": "Enabled"},
        ],
    }
    out = interpret(200, None, payload)
    assert out == {
        "executed": True,
        "ok": False,
        "outcome": "failed",
        "summary": "1 of 8 checks failed",
        "failedChecks": [payload["checks"][0]],
    }


def test_a_backend_that_cannot_run_the_code_is_not_a_pass() -> None:
    moto_without_docker = {"errorMessage": "error running docker: Error while fetching server API version"}
    out = interpret(202, "Handled", moto_without_docker)
    assert out["executed"] is False and out["outcome"] == "not executed"
    assert out["ok"] is None
    assert out["functionError"] == "Handled"
    assert out["detail"].startswith("error running docker")
    # moto's use_docker=false mode echoes the event back: also not the handler's answer
    assert interpret(202, None, {"targetRegion": "eu-west-1"})["executed"] is False


def test_the_wait_covers_a_queued_then_timed_out_run() -> None:
    assert invoke.result_wait_s() > lam_mod.MAX_EVENT_AGE_S + lam_mod.TIMEOUT_S


# ---------------------------------------------------------------- against moto in-process


def _deploy(backend: Backend, cfg: MigrationConfig) -> None:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    topic = backend.client("sns", REGION).create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    role = iam.ensure_lambda_role.fn(backend, cfg, key, topic)["arn"]
    lam_mod.ensure_validator.fn(backend, cfg, role, topic, key)
    names = resource_names(cfg)
    ensure_checkpoint_table.fn(backend, REGION, names.checkpoint_table, cfg.tags(), key)


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status


class FakeAsyncLambda:
    """Answers Invoke the way Lambda answers an accepted asynchronous invocation (202, empty body) and runs
    the real handler later, during the flow's first wait (or never), like the service's queue would."""

    def __init__(self, client: Any, run: bool, error: Exception | None = None) -> None:
        self.run, self.error, self.invokes, self.events = run, error, 0, []  # type: list[dict[str, Any]]
        client.meta.events.register("before-call.lambda.Invoke", self.before_call)

    def before_call(self, params: dict[str, Any], **_: Any) -> Any:
        self.invokes += 1
        assert params["headers"]["X-Amz-Invocation-Type"] == "Event"
        self.events.append(json.loads(params["body"]))
        if self.error:
            raise self.error
        return _Http(202), {"StatusCode": 202, "Payload": io.BytesIO(b""), "ResponseMetadata": {}}

    def sleep(self, seconds: float) -> None:
        self.slept = getattr(self, "slept", 0.0) + seconds
        if self.run and len(self.events) == 1:
            h.handler(self.events.pop(), None)


@pytest.fixture
def deployed(backend: Backend, cfg: MigrationConfig) -> Backend:
    _deploy(backend, cfg)
    return backend


def test_moto_answers_the_async_invoke_synchronously_so_not_executed_at_once(
    deployed: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto runs even an Event invoke inline and answers with a body (AWS: 202, empty body). Its docker-less
    mode is used here: in-process, whether moto's docker error is caught depends on what ran before in the
    same interpreter (it escaped as a DockerException after a ThreadedMotoServer had run); the moto server
    of the e2e tests answers the docker error as a FunctionError."""
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    sleeps: list[float] = []
    out = invoke.invoke_validator.fn(deployed, cfg, sleep=sleeps.append)
    assert out["outcome"] == "not executed" and out["executed"] is False
    assert out["invocationType"] == "Event" and out["measuredFrom"] == "invoke response"
    assert sleeps == []  # detected from the response: no polling, no minutes added to the flow tests


def test_recorded_result_is_read_back(deployed: Backend, cfg: MigrationConfig) -> None:
    fake = FakeAsyncLambda(deployed.client("lambda", REGION, max_attempts=1), run=True)
    out = invoke.invoke_validator.fn(deployed, cfg, run_id="run-1", sleep=fake.sleep)
    assert fake.invokes == 1
    # The buckets and tables were never created here, so the real handler's checks fail: executed, failed.
    assert out["executed"] is True and out["outcome"] == "failed" and out["ok"] is False
    assert out["runId"] == "run-1" and out["measuredFrom"] == "recorded result"
    assert out["failed"] == out["checks"] > 0
    assert {c["check"] for c in out["failedChecks"]} >= {"exists"}
    item = deployed.client("dynamodb", REGION).get_item(
        TableName=resource_names(cfg).checkpoint_table, Key={"pk": {"S": "validator"}, "sk": {"S": "run-1"}}
    )["Item"]
    assert invoke.from_record(item)["summary"] == out["summary"]


def test_accepted_and_no_result_is_unknown_after_the_bound(deployed: Backend, cfg: MigrationConfig) -> None:
    fake = FakeAsyncLambda(deployed.client("lambda", REGION, max_attempts=1), run=False)
    out = invoke.invoke_validator.fn(deployed, cfg, sleep=fake.sleep)
    assert out["outcome"] == "unknown" and out["executed"] is None and out["ok"] is None
    assert "dead-letter topic" in out["detail"]
    assert fake.slept == pytest.approx(invoke.result_wait_s())
    assert fake.invokes == 1


def test_client_timeout_is_outcome_unknown_never_resent(deployed: Backend, cfg: MigrationConfig) -> None:
    """The answer was lost, not the invocation: wait for its result, never invoke again."""
    lost = ReadTimeoutError(endpoint_url="https://lambda.eu-west-1.amazonaws.com")
    fake = FakeAsyncLambda(deployed.client("lambda", REGION, max_attempts=1), run=False, error=lost)
    out = invoke.invoke_validator.fn(deployed, cfg, sleep=fake.sleep)
    assert fake.invokes == 1
    assert out["outcome"] == "unknown" and "client gave up" in out["detail"]


def test_client_timeout_then_result_counts_as_executed(deployed: Backend, cfg: MigrationConfig) -> None:
    lost = ReadTimeoutError(endpoint_url="https://lambda.eu-west-1.amazonaws.com")
    fake = FakeAsyncLambda(deployed.client("lambda", REGION, max_attempts=1), run=True, error=lost)
    out = invoke.invoke_validator.fn(deployed, cfg, sleep=fake.sleep)
    assert fake.invokes == 1 and out["executed"] is True


def test_missing_function_is_not_executed(backend: Backend, cfg: MigrationConfig) -> None:
    out = invoke.invoke_validator.fn(backend, cfg, sleep=lambda s: None)
    assert out["outcome"] == "not executed" and out["functionError"] == "ResourceNotFoundException"


def test_the_report_line_says_which_of_the_four_outcomes() -> None:
    from tasks.report.render import lambda_line

    passed = {"executed": True, "ok": True, "outcome": "passed"}
    failed = {"executed": True, "ok": False, "outcome": "failed", "summary": "2 of 9 checks failed"}
    assert lambda_line(passed) == "executed, passed: all checks passed"
    assert lambda_line(failed) == "executed, failed: 2 of 9 checks failed"
    assert lambda_line(invoke.unknown("no result within 135 s")).startswith("invoked, outcome unknown: no result")
    not_run = interpret(202, "Handled", {"errorMessage": "error running docker"})
    assert lambda_line(not_run).startswith("deployed, not executed by this backend (Handled: error running docker")


def test_an_unknown_outcome_is_a_next_step() -> None:
    from tasks.report.build import next_steps

    report: dict[str, Any] = {"resources": {}, "validation": {"lambda": invoke.unknown("no result within 135 s")}}
    assert any("left no result (no result within 135 s)" in s for s in next_steps(report))
    report["validation"]["lambda"] = {"executed": True, "ok": True, "outcome": "passed"}
    assert not any("left no result" in s for s in next_steps(report))
