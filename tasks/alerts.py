"""The one alert path: a migration alert to the migration's SNS topic.

Three pieces, used by the task/flow failure hooks, the flows' NO-GO alerts and the SnsAlert block alike:
  - `alert` (pure): the SNS Publish request for a subject and body, redacted, with a valid Subject;
  - `send`: publish that request with a given SNS client (the project's Backend, or the block's
    AwsCredentials), returning the MessageId;
  - `target_of_run`: where the current run's alerts go, read from the flow run's own parameters
    (`options`: config and backend), so no module-global target is needed and a hook in any worker
    finds it. Until the topic exists (preflight, early provisioning) publishing fails and the alert is
    logged only. Messages carry the flow run, task, resource and error; never credentials.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.model import MigrationConfig
from config.options import RunOptions
from tasks.aws import Backend
from tasks.names import alert_topic_arn

log = logging.getLogger(__name__)

# SNS Publish reference: "Subjects must be UTF-8 text with no line breaks or control characters, and less than
# 100 characters long". The project has always sent up to 100 (test_blocks pins a 100-character subject).
SUBJECT_MAX = 100
_SECRETISH = re.compile(r"(A[SK]IA[0-9A-Z]{12,}|(?i:secret|token|password)[=:]\s*\S+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
FIFO_GROUP = "region-migration"


def redact(text: str) -> str:
    """Remove anything that looks like a key or secret before it leaves the process."""
    return _SECRETISH.sub("[redacted]", text)


def clean_subject(subject: str) -> str:
    """Redacted, on one line, at most 100 characters: the rules SNS enforces on a Subject."""
    return _CONTROL.sub(" ", redact(subject)).strip()[:SUBJECT_MAX].rstrip()


def alert(topic_arn: str, subject: str | None, body: str) -> dict[str, Any]:
    """The Publish request for one alert: redacted body (never empty), a cleaned Subject when one is left,
    and a group and deduplication id on a FIFO topic (which requires them)."""
    request: dict[str, Any] = {"TopicArn": topic_arn, "Message": redact(body) or "(empty message)"}
    if subject and clean_subject(subject):
        request["Subject"] = clean_subject(subject)
    if topic_arn.endswith(".fifo"):
        request["MessageGroupId"] = FIFO_GROUP
        request["MessageDeduplicationId"] = uuid.uuid4().hex
    return request


def send(sns: Any, topic_arn: str, subject: str | None, body: str) -> str:
    """Publish one alert with this SNS client; returns the MessageId (SNS's errors propagate)."""
    return str(sns.publish(**alert(topic_arn, subject, body))["MessageId"])


def task_failure(
    batch: str, task_name: str, task_run_name: str, flow_run: str, attempts: Any, error: Any
) -> tuple[str, str]:
    """(subject, body) of the alert for a task that failed after its last retry."""
    return (
        f"region-migration {batch}: task {task_name} failed",
        f"Flow run: {flow_run}\nTask run: {task_run_name}\nTask: {task_name}\nAttempts: {attempts}\nError: {error}",
    )


def flow_failure(batch: str, flow_name: str, flow_run_name: str, state_name: str, error: Any) -> tuple[str, str]:
    """(subject, body) of the alert for a flow run that failed or crashed."""
    return (
        f"region-migration {batch}: flow {flow_name} {state_name.lower()}",
        f"Flow run: {flow_name}/{flow_run_name}\nState: {state_name}\nError: {error}",
    )


@dataclass(frozen=True)
class AlertTarget:
    """Where one run's alerts go."""

    backend: Backend
    region: str
    topic_arn: str
    batch: str


def configure(backend: Backend, cfg: MigrationConfig, account_id: str) -> str:
    """Log where this run's alerts go and return the topic ARN; nothing is stored: the hooks find the
    target from the run's parameters (`target_of_run`)."""
    arn = alert_topic_arn(cfg, account_id)
    log.info("alerts for batch %s go to %s", cfg.migration_batch, arn)
    return arn


def target_of(parameters: Mapping[str, Any]) -> AlertTarget | None:
    """The alert target named by a flow run's parameters (its `options`), or None when they name none or
    do not resolve (a bad config: the run's own error says why)."""
    options = parameters.get("options")
    if options is None:
        return None
    try:
        opts = options if isinstance(options, RunOptions) else RunOptions.model_validate(options)
        cfg = opts.config()
        backend = opts.backend(cfg)
        account = backend.account_id(cfg.target_region)
    except Exception as err:  # an alert must never mask the failure it reports
        log.error("ALERT target unknown (%s): %s", type(err).__name__, redact(str(err)))
        return None
    return AlertTarget(backend, cfg.target_region, alert_topic_arn(cfg, account), cfg.migration_batch)


def target_of_run() -> AlertTarget | None:
    """The current flow run's alert target (its parameters; from the API when not in this process)."""
    try:
        from prefect.runtime import flow_run

        parameters = flow_run.parameters
    except Exception:
        return None
    return target_of(parameters or {})


def publish(subject: str, message: str) -> bool:
    """Publish one alert to the current run's topic; False (and a log line) when there is none or SNS refuses."""
    return publish_to(target_of_run(), subject, message)


def publish_to(target: AlertTarget | None, subject: str, message: str) -> bool:
    """Publish one alert to this target; False (and a log line) when there is none or SNS refuses."""
    if target is None:
        log.error("ALERT (no topic known): %s: %s", clean_subject(subject), redact(message))
        return False
    try:
        send(target.backend.client("sns", target.region), target.topic_arn, subject, message)
        return True
    except Exception as err:  # an alert must never mask the failure it reports
        what = f"{clean_subject(subject)}: {redact(message)}"
        log.error("ALERT could not be published to %s (%s): %s", target.topic_arn, type(err).__name__, what)
        return False


def _flow_run_name() -> str:
    try:
        from prefect.runtime import flow_run

        return f"{flow_run.flow_name}/{flow_run.name}"
    except Exception:
        return "unknown flow run"


def on_task_failure(task: Any, task_run: Any, state: Any) -> None:
    """Prefect on_failure hook: runs once, after the last retry."""
    target = target_of_run()
    subject, body = task_failure(
        target.batch if target else "?",
        task.name,
        task_run.name,
        _flow_run_name(),
        getattr(task_run, "run_count", "?"),
        state.message,
    )
    publish_to(target, subject, body)


def on_flow_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure / on_crashed hook for flows: the run's parameters are on the flow run itself."""
    target = target_of(getattr(flow_run, "parameters", None) or {})
    subject, body = flow_failure(target.batch if target else "?", flow.name, flow_run.name, state.name, state.message)
    publish_to(target, subject, body)
