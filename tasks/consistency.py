"""Retry while AWS has not caught up with a change we just made.

IAM, KMS grants and S3 bucket settings are eventually consistent: a role created a second ago "cannot be
assumed by Lambda", a bucket whose versioning was just enabled "must have versioning enabled" (S3 docs:
after enabling versioning for the first time it may take up to 15 minutes to propagate). Those answers
are not failures, they are "not yet". This module retries exactly the answers it is told about (error code
and a piece of the message), with exponential backoff and full jitter, within a bounded time, and logs
what it is waiting for. Anything else is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tasks.aws import error_code

log = logging.getLogger(__name__)

T = TypeVar("T")

BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0
MAX_ATTEMPTS = 200  # full jitter can draw tiny delays: cap the calls too, not only the time


@dataclass(frozen=True)
class Lag:
    """One known "AWS has not caught up yet" answer: its error code, a piece of its message, and what we wait for."""

    code: str
    message: str
    waiting_for: str
    unless: tuple[str, ...] = ()  # pieces of message that make the same answer permanent

    def matches(self, err: BaseException) -> bool:
        text = str(err).lower()
        return (
            error_code(err) == self.code
            and self.message.lower() in text
            and not any(u.lower() in text for u in self.unless)
        )


class NotConsistentError(RuntimeError):
    """AWS still answered "not yet" when the time budget ran out (the last answer is the __cause__)."""


def run_logger() -> Any:
    """The Prefect run's logger inside a flow or task run (so the wait shows in the UI), else this module's."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run: MissingContextError
        return log


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def lag_of(err: BaseException, lags: Sequence[Lag]) -> Lag | None:
    """The first Lag that `err` is, else None (pure)."""
    return next((lag for lag in lags if lag.matches(err)), None)


def full_jitter_delay(attempt: int, rand: float, base: float = BASE_DELAY_S, cap: float = MAX_DELAY_S) -> float:
    """AWS's "full jitter" backoff: uniform in [0, min(cap, base * 2**attempt)] (pure; rand in [0, 1))."""
    return rand * min(cap, base * 2 ** min(attempt, 30))


def retry_until_consistent(
    call: Callable[[], T],
    lags: Sequence[Lag],
    *,
    what: str,
    budget_s: float,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """call() until it stops answering one of `lags`; other errors propagate unchanged.

    The budget counts both the clock and the time slept (so a patched-out sleep still ends the loop);
    `sleep` defaults to this module's _sleep (which tests patch).
    When it runs out: NotConsistentError naming `what`, what was awaited, the attempts and the last answer.
    """
    start = clock()
    slept = 0.0
    attempt = 0
    while True:
        try:
            return call()
        except Exception as err:
            lag = lag_of(err, lags)
            if lag is None:
                raise
            attempt += 1
            elapsed = max(clock() - start, slept)
            delay = min(full_jitter_delay(attempt - 1, rand()), max(0.0, budget_s - elapsed))
            if elapsed >= budget_s or attempt >= MAX_ATTEMPTS:
                raise NotConsistentError(
                    f"{what}: still waiting for {lag.waiting_for} after {attempt} attempts over {elapsed:.0f} s "
                    f"(bounded at {budget_s:.0f} s); last answer: {err}"
                ) from err
            run_logger().warning(
                "%s: waiting for %s (attempt %d, %.0f of %.0f s; AWS said %s); retrying in %.1f s",
                what,
                lag.waiting_for,
                attempt,
                elapsed,
                budget_s,
                error_code(err),
                delay,
            )
            (sleep or _sleep)(delay)
            slept += delay
