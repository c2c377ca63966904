"""Scanning a table the same way for the backfill and the validation: paced, bounded, capability-aware.

- Paced: every page asks for its ConsumedCapacity and pays it to a ReadPacer holding the worker's static
  share of the table's read budget (tasks.move.dynamodb_plan.table_read_rate).
- Bounded: a Scan that keeps failing with a 5xx or throttling is retried for a bounded total time
  (SCAN_RETRY_BUDGET_S), however many attempts (botocore's or Prefect's) make it, then fails with one line.
- Capability-aware: segment parameters are sent only when more than one segment is planned, and a table
  that the backend keeps answering 5xx for segmented scans of (moto 5.2.5 with a binary hash key), while it
  serves an unsegmented one, is read as one segment and reported under notSupportedByBackend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from config.model import MigrationConfig, TableSpec
from tasks.aws import Backend, error_code
from tasks.move.dynamodb_plan import THROTTLE_CODES, RetryBudget, backoff_delay

# botocore attempts inside each of ours: its sleeps are at most 1 + 2 s (rand x min(2**n, 20)). With the
# shared clients' 8 attempts, one failing call slept up to 71 s (35 s on average) and Prefect's 5 attempts of
# a backfill task made that minutes. Our own retries then stop after the budget, counted from the first failure.
SCAN_ATTEMPTS = 3
PROBE_ATTEMPTS = 2  # the segmented-scan probe: two 5xx in a row (<= 1 s apart) mean fall back (slower, never wrong)
SCAN_RETRY_BUDGET_S = {"server": 30.0, "throttle": 300.0}

_BUDGETS: dict[tuple[str, ...], RetryBudget] = {}  # per call, shared by the retries of a task in this process
_LOCK = threading.Lock()


class ScanFailed(RuntimeError):
    """A Scan failed the same way for the whole retry budget; the message is one line."""


def scan_client(backend: Backend, region: str) -> Any:
    """The DynamoDB client scans use: the backend's, with few botocore attempts (ours add the rest, bounded)."""
    return backend.client("dynamodb", region, max_attempts=SCAN_ATTEMPTS)


def failure_kind(err: BaseException) -> str | None:
    """'throttle', 'server' (HTTP 5xx) or None for an error that retrying will not fix."""
    if error_code(err) in THROTTLE_CODES:
        return "throttle"
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or error_code(err) in ("InternalServerError", "ServiceUnavailable"):
            return "server"
    return None


def _budget(key: tuple[str, ...], kind: str, clock: Callable[[], float]) -> RetryBudget:
    with _LOCK:
        found = _BUDGETS.get((*key, kind))
        if found is None:
            found = _BUDGETS[(*key, kind)] = RetryBudget(SCAN_RETRY_BUDGET_S[kind], clock=clock)
        return found


def call_scan(
    ddb: Any,
    request: dict[str, Any],
    key: tuple[str, ...],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One Scan page, retried on 5xx and throttling until the call's budget is spent (see SCAN_RETRY_BUDGET_S).

    `key` names the call (region, table, segment): the budget is shared by every attempt that makes it, so
    a task retried by Prefect does not start the clock again.
    """
    attempt = 0
    while True:
        try:
            resp: dict[str, Any] = ddb.scan(**request)
        except Exception as err:
            kind = failure_kind(err)
            if kind is None:
                raise
            budget = _budget(key, kind, clock)
            if not budget.allow():
                where = "" if "Segment" not in request else f" segment {request['Segment']}/{request['TotalSegments']}"
                first_line = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                raise ScanFailed(
                    f"Scan of {request['TableName']}{where} failed the same way for {budget.spent():.0f} s "
                    f"(retry budget {budget.seconds:.0f} s): {first_line}"
                ) from err
            sleep(backoff_delay(attempt + 4))
            attempt += 1
            continue
        with _LOCK:
            for kind in SCAN_RETRY_BUDGET_S:
                _BUDGETS.pop((*key, kind), None)
        return resp


def segmented_scan_problem(backend: Backend, region: str, table: str, total_segments: int) -> str | None:
    """Why this table cannot be scanned in `total_segments` segments on this backend, or None.

    One probe page with segment parameters; if the backend answers 5xx to it (after PROBE_ATTEMPTS attempts)
    but serves the same table without them, segmented scans are what it lacks. Real DynamoDB has no such
    limit. An unsegmented failure is the table's problem, not the segments': it is raised.
    """
    if total_segments <= 1:
        return None
    ddb = backend.client("dynamodb", region, max_attempts=PROBE_ATTEMPTS)
    try:
        ddb.scan(TableName=table, Segment=0, TotalSegments=total_segments, Limit=1)
        return None
    except Exception as err:
        if failure_kind(err) != "server":
            raise
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(err, ClientError) else ""
    ddb.scan(TableName=table, Limit=1)
    return (
        f"Scan with Segment/TotalSegments answers HTTP {status} for table {table} while a Scan without them "
        "works: read as one segment"
    )


def spec_for(cfg: MigrationConfig, table: str) -> TableSpec:
    """The config entry of a source table (or target: its source's entry), defaults for one not listed."""
    for spec in cfg.dynamodb_tables:
        if table in (spec.name, cfg.target_name(spec.name)):
            return spec
    return TableSpec.model_construct(name=table)  # defaults, without the name rules of a config entry
