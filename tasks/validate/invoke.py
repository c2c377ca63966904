"""Invoke the deployed validation Lambda asynchronously and record what actually happened.

Asynchronous, because the function's dead-letter target only receives failed *asynchronous* invocations:
with Lambda's retries off (provisioning sets MaximumRetryAttempts 0), a crash or a timeout reaches the
alert topic once. The handler writes its result to the checkpoint table under a run id passed in the
event; the flow polls for it until the event must have expired or the run timed out
(MAX_EVENT_AGE_S + TIMEOUT_S, plus a margin). Outcomes, all measured:
- "passed" / "failed": the handler's recorded result;
- "not executed": the invoke was refused, or the backend answered it synchronously with something that is
  not the handler's result (moto without Docker answers FunctionError "error running docker ...");
- "unknown": accepted (or the client timed out, so it may have been) and no result within the bound: it
  crashed, timed out or expired unstarted, and Lambda sent the event to the dead-letter topic.
The invoke is never retried (not idempotent: the function publishes alerts).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError

from config.model import MigrationConfig
from tasks.aws import Backend, error_code
from tasks.consistency import run_logger
from tasks.move.keys import RESULT_PK
from tasks.names import resource_names
from tasks.provision.lambda_ import MAX_EVENT_AGE_S, TIMEOUT_S
from tasks.steps import step

RESULT_MARGIN_S = 15.0  # cold start, the PutItem, clock skew
POLL_INTERVAL_S = 2.0


def result_wait_s() -> float:
    """How long an accepted asynchronous run can take to leave its result: queued at most MAX_EVENT_AGE_S
    (then discarded to the DLQ), running at most TIMEOUT_S."""
    return float(MAX_EVENT_AGE_S + TIMEOUT_S + RESULT_MARGIN_S)


def interpret(status: int, function_error: str | None, payload: Any) -> dict[str, Any]:
    """Pure: decide from an invoke response body whether the handler ran and what it said."""
    ran = isinstance(payload, dict) and "ok" in payload and "checks" in payload
    if ran:
        ok = bool(payload["ok"])
        return {
            "executed": True,
            "ok": ok,
            "outcome": "passed" if ok else "failed",
            "summary": payload.get("summary", ""),
            "failedChecks": [c for c in payload.get("checks", []) if not c.get("ok")],
        }
    detail = payload.get("errorMessage") if isinstance(payload, dict) else payload
    return {
        "executed": False,
        "ok": None,
        "outcome": "not executed",
        "statusCode": status,
        "functionError": function_error,
        "detail": str(detail)[:300],
    }


def from_record(item: dict[str, Any]) -> dict[str, Any]:
    """Pure: the handler's recorded result (a low-level DynamoDB item) as the report's entry."""
    ok = bool(item.get("ok", {}).get("BOOL"))
    try:
        failed_checks = json.loads(item.get("failedChecks", {}).get("S") or "[]")
    except ValueError:
        failed_checks = []
    return {
        "executed": True,
        "ok": ok,
        "outcome": "passed" if ok else "failed",
        "summary": item.get("summary", {}).get("S", ""),
        "checks": int(item.get("total", {}).get("N", 0)),
        "failed": int(item.get("failed", {}).get("N", 0)),
        "failedChecks": failed_checks,
        "notified": bool(item.get("notified", {}).get("BOOL")),
        "finishedAt": item.get("finishedAt", {}).get("S"),
    }


def unknown(reason: str) -> dict[str, Any]:
    return {"executed": None, "ok": None, "outcome": "unknown", "detail": reason}


def wait_for_result(
    ddb: Any,
    table: str,
    run_id: str,
    bound_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Any] | None, float]:
    """Poll the checkpoint table (consistent reads) for the run's item; (item or None, seconds waited).
    The bound counts the clock and the time slept, so a patched-out sleep still ends it."""
    start, slept = clock(), 0.0
    while True:
        got = ddb.get_item(TableName=table, Key={"pk": {"S": RESULT_PK}, "sk": {"S": run_id}}, ConsistentRead=True)
        waited = max(clock() - start, slept)
        if "Item" in got:
            return dict(got["Item"]), waited
        if waited >= bound_s:
            return None, waited
        delay = min(POLL_INTERVAL_S, bound_s - waited)
        sleep(delay)
        slept += delay


# Never retried: an invocation is not idempotent (it may publish alerts), and one whose answer was lost may
# still be running; invoke_validator reports it as "outcome unknown" instead.
@step("invoke-validator", retries=0)
def invoke_validator(
    backend: Backend,
    cfg: MigrationConfig,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Invoke the validator once, asynchronously, and wait for its recorded result; measured outcome."""
    names = resource_names(cfg)
    run_id = run_id or uuid.uuid4().hex
    event = {
        "targetRegion": cfg.target_region,
        "buckets": sorted(names.buckets.values()),
        "tables": sorted(names.tables.values()),
        "runId": run_id,
        "resultTable": names.checkpoint_table,
    }
    base: dict[str, Any] = {"function": names.lambda_function, "invocationType": "Event", "runId": run_id}
    # One attempt (max_attempts=1): botocore would otherwise resend an invoke the service may have queued.
    lam = backend.client("lambda", cfg.target_region, max_attempts=1)
    why_wait = "accepted"
    try:
        resp = lam.invoke(
            FunctionName=names.lambda_function, InvocationType="Event", Payload=json.dumps(event).encode()
        )
    except ClientError as err:
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return base | interpret(status, error_code(err), {"errorMessage": str(err)})
    except (ReadTimeoutError, ConnectionClosedError) as err:
        # Sent, answer lost: it may be queued. Never re-sent; its result may still arrive.
        why_wait = f"client gave up waiting for the answer ({type(err).__name__})"
    except BotoCoreError as err:  # never reached the service (connection refused, DNS, credentials)
        return base | interpret(0, type(err).__name__, {"errorMessage": str(err)})
    else:
        status = int(resp.get("StatusCode", 0))
        raw = resp["Payload"].read()
        function_error = resp.get("FunctionError")
        # Lambda answers an accepted asynchronous invoke with 202 and an empty body. A backend that ran the
        # function synchronously instead (or failed to) says so in the response: that is its only answer.
        if function_error or raw.strip():
            try:
                payload: Any = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            return base | interpret(status, function_error, payload) | {"measuredFrom": "invoke response"}
    bound = result_wait_s()
    run_logger().info("validator run %s %s; waiting up to %.0f s for its result", run_id, why_wait, bound)
    ddb = backend.client("dynamodb", cfg.target_region)
    try:
        item, waited = wait_for_result(ddb, names.checkpoint_table, run_id, bound, sleep, clock)
    except ClientError as err:
        return base | unknown(f"{why_wait}; its result cannot be read from {names.checkpoint_table}: {err}")
    if item is None:
        return base | unknown(
            f"{why_wait}, no result recorded within {waited:.0f} s: the run crashed, timed out or expired "
            "unstarted (Lambda sends such events to the dead-letter topic), or this backend does not run it"
        )
    return base | from_record(item) | {"measuredFrom": "recorded result", "waitedSeconds": round(waited, 1)}
