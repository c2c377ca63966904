"""Retry while AWS has not caught up: exactly the listed answers, full jitter, bounded, said in the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tasks import consistency
from tasks.consistency import Lag, NotConsistentError, full_jitter_delay, retry_until_consistent

LAG = Lag("InvalidRequest", "Destination bucket must have versioning enabled", "the target bucket's versioning")


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutBucketReplication")


class Flaky:
    """Raises `err` for the first `times` calls, then answers "done"."""

    def __init__(self, err: Exception, times: int) -> None:
        self.err, self.times, self.calls = err, times, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.err
        return "done"


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    assert full_jitter_delay(0, 0.0) == 0.0
    assert full_jitter_delay(0, 0.999) < 1.0
    assert full_jitter_delay(3, 0.5) == 4.0  # half of 2**3
    assert full_jitter_delay(50, 0.999) < consistency.MAX_DELAY_S


def test_the_listed_answer_is_retried_until_it_stops(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    call = Flaky(_error("InvalidRequest", "Destination bucket must have versioning enabled."), 3)
    with caplog.at_level(logging.WARNING, logger="tasks.consistency"):
        out = retry_until_consistent(call, [LAG], what="put rule", budget_s=60, sleep=sleeps.append, rand=lambda: 0.5)
    assert out == "done" and call.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]  # full jitter of 1, 2, 4 s with rand 0.5
    assert len(caplog.records) == 3
    assert "put rule: waiting for the target bucket's versioning" in caplog.records[0].getMessage()


def test_other_answers_are_raised_at_once() -> None:
    sleeps: list[float] = []
    for err in (
        _error("InvalidRequest", "Some other invalid request"),  # right code, wrong message
        _error("AccessDenied", "Destination bucket must have versioning enabled."),  # right message, wrong code
        ValueError("not an AWS answer"),
    ):
        call = Flaky(err, 1)
        with pytest.raises(type(err)):
            retry_until_consistent(call, [LAG], what="x", budget_s=60, sleep=sleeps.append)
        assert call.calls == 1
    assert sleeps == []


def test_an_answer_that_never_changes_ends_in_a_bounded_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)  # the default sleep, patched out
    call = Flaky(_error("InvalidRequest", "Destination bucket must have versioning enabled."), 10**9)
    with pytest.raises(NotConsistentError, match="still waiting for the target bucket's versioning") as info:
        retry_until_consistent(call, [LAG], what="put the rule on s3://b", budget_s=120)
    assert sum(sleeps) == pytest.approx(120)  # exactly the budget, never more
    assert "put the rule on s3://b" in str(info.value) and "versioning enabled" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)
    assert call.calls == len(sleeps) + 1


def test_tiny_jitter_draws_cannot_loop_for_ever() -> None:
    call: Any = Flaky(_error("InvalidRequest", "Destination bucket must have versioning enabled."), 10**9)
    with pytest.raises(NotConsistentError):
        retry_until_consistent(call, [LAG], what="x", budget_s=60, sleep=lambda s: None, rand=lambda: 0.0)
    assert call.calls == consistency.MAX_ATTEMPTS


def test_inside_a_prefect_run_the_wait_is_in_the_run_log(prefect_harness: None) -> None:
    from prefect import flow

    from tasks.consistency import run_logger

    @flow
    def waits() -> tuple[str, str]:
        call = Flaky(_error("InvalidRequest", "Destination bucket must have versioning enabled."), 1)
        out = retry_until_consistent(call, [LAG], what="w", budget_s=5, sleep=lambda s: None)
        return out, run_logger().name

    assert waits() == ("done", "prefect.flow_runs")
    assert run_logger().name == "tasks.consistency"  # outside a run
