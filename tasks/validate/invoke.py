"""Invoke the deployed validation Lambda and record what actually happened.

A backend that cannot execute Lambda code (the emulator without Docker) answers with a FunctionError and
a payload that is not the handler's result: then the report says "deployed, not executed", never "passed".
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from config.model import MigrationConfig
from tasks.aws import Backend, error_code
from tasks.names import resource_names


def interpret(status: int, function_error: str | None, payload: Any) -> dict[str, Any]:
    """Pure: decide from the invoke response whether the handler ran and what it said."""
    ran = isinstance(payload, dict) and "ok" in payload and "checks" in payload
    if ran:
        return {
            "executed": True,
            "ok": bool(payload["ok"]),
            "summary": payload.get("summary", ""),
            "failedChecks": [c for c in payload.get("checks", []) if not c.get("ok")],
        }
    detail = payload.get("errorMessage") if isinstance(payload, dict) else payload
    return {
        "executed": False,
        "ok": None,
        "statusCode": status,
        "functionError": function_error,
        "detail": str(detail)[:300],
    }


def invoke_validator(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Run the validator synchronously with the migration's bucket and table pairs; measured outcome."""
    names = resource_names(cfg)
    event = {
        "targetRegion": cfg.targetRegion,
        "buckets": sorted(names.buckets.values()),
        "tables": sorted(names.tables.values()),
    }
    # One attempt: an invocation is not idempotent (the function publishes alerts), and a backend that
    # fails to run it answers 5xx, which botocore would otherwise retry with backoff for minutes.
    try:
        resp = backend.client("lambda", cfg.targetRegion, max_attempts=1).invoke(
            FunctionName=names.lambda_function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
    except ClientError as err:
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return {"function": names.lambda_function, **interpret(status, error_code(err), {"errorMessage": str(err)})}
    raw = resp["Payload"].read()
    try:
        payload: Any = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    return {
        "function": names.lambda_function,
        **interpret(int(resp.get("StatusCode", 0)), resp.get("FunctionError"), payload),
    }
