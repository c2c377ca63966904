"""The validator invocation is reported as it happened: ran and passed/failed, or not executed."""

from __future__ import annotations

from tasks.validate.invoke import interpret


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
        "summary": "1 of 8 checks failed",
        "failedChecks": [payload["checks"][0]],
    }


def test_a_backend_that_cannot_run_the_code_is_not_a_pass() -> None:
    moto_without_docker = {"errorMessage": "error running docker: Error while fetching server API version"}
    out = interpret(200, "Handled", moto_without_docker)
    assert out["executed"] is False
    assert out["ok"] is None
    assert out["functionError"] == "Handled"
    assert out["detail"].startswith("error running docker")
    # moto's use_docker=false mode echoes the event back: also not the handler's answer
    assert interpret(200, None, {"targetRegion": "eu-west-1"})["executed"] is False
