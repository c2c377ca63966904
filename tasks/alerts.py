"""Alerts to the migration's SNS topic when a task fails for good (after its last retry) or a flow fails.

Prefect hooks receive only (task, task_run, state), so the flow registers where alerts go once it knows
(backend, config, account) with `configure`. Until the topic exists (preflight, early provisioning) an
alert is logged only. Messages carry the flow run, task, resource and error; never credentials.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, arn
from tasks.names import resource_names

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_TARGET: dict[str, Any] = {}
_SECRETISH = re.compile(r"(A[SK]IA[0-9A-Z]{12,}|(?i:secret|token|password)[=:]\s*\S+)")


def configure(backend: Backend, cfg: MigrationConfig, account_id: str) -> str:
    """Point alerts at this migration's topic; returns the topic ARN."""
    topic_arn = arn("sns", cfg.targetRegion, account_id, resource_names(cfg).topic)
    with _LOCK:
        _TARGET.update(backend=backend, region=cfg.targetRegion, topic_arn=topic_arn, batch=cfg.migrationBatch)
    return topic_arn


def redact(text: str) -> str:
    """Remove anything that looks like a key or secret before it leaves the process."""
    return _SECRETISH.sub("[redacted]", text)


def publish(subject: str, message: str) -> bool:
    """Publish one alert; False (and a log line) when no topic is configured or reachable."""
    with _LOCK:
        target = dict(_TARGET)
    subject = redact(subject)[:100]
    message = redact(message)
    if not target:
        log.error("ALERT (no topic configured yet): %s: %s", subject, message)
        return False
    try:
        target["backend"].client("sns", target["region"]).publish(
            TopicArn=target["topic_arn"], Subject=subject, Message=message
        )
        return True
    except Exception as err:  # an alert must never mask the failure it reports
        log.error("ALERT could not be published (%s): %s: %s", type(err).__name__, subject, message)
        return False


def _flow_run_name() -> str:
    try:
        from prefect.runtime import flow_run

        return f"{flow_run.flow_name}/{flow_run.name}"
    except Exception:
        return "unknown flow run"


def on_task_failure(task: Any, task_run: Any, state: Any) -> None:
    """Prefect on_failure hook: runs once, after the last retry."""
    with _LOCK:
        batch = _TARGET.get("batch", "?")
    subject = f"region-migration {batch}: task {task.name} failed"
    message = (
        f"Flow run: {_flow_run_name()}\nTask run: {task_run.name}\nTask: {task.name}\n"
        f"Attempts: {getattr(task_run, 'run_count', '?')}\nError: {state.message}"
    )
    publish(subject, message)


def on_flow_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure / on_crashed hook for flows."""
    with _LOCK:
        batch = _TARGET.get("batch", "?")
    publish(
        f"region-migration {batch}: flow {flow.name} {state.name.lower()}",
        f"Flow run: {flow.name}/{flow_run.name}\nState: {state.name}\nError: {state.message}",
    )
