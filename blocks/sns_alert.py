"""The migration's SNS alert topic as a Prefect notification block, so Prefect automations can use it.

An automation's "send a notification" action (and any flow) calls `notify(body, subject)`; the message
goes to the topic the migration provisions through the one alert path (tasks.alerts: the same request,
redaction and Subject rules as the task-failure alerts); only the client differs (the block's
AwsCredentials). In Prefect 3.9 `NotificationBlock.notify` is awaited by the server's automation action
and called plainly from sync code, so `notify` returns the awaitable `anotify` in an async context and runs
synchronously otherwise, by the rule Prefect's own notification blocks follow (through public APIs only).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

import boto3
import botocore.config
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.context import FlowRunContext, TaskRunContext
from prefect_aws import AwsCredentials
from pydantic import Field, field_validator

from tasks.alerts import SUBJECT_MAX, clean_subject, redact, send

__all__ = ["SUBJECT_MAX", "SnsAlert", "SnsAlertError", "clean_subject"]

_TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class SnsAlertError(NotificationError):
    """SNS refused a notification; `log` (and str()) say why, redacted."""

    def __init__(self, log: str) -> None:
        super().__init__(log)
        self.args = (log,)


def in_async_context() -> bool:
    """True where the caller must await: inside an async task or flow, or, outside any run, on a running
    event loop (Prefect's own rule for its notification blocks, here with public APIs)."""
    run = TaskRunContext.get() or FlowRunContext.get()
    if run is not None:
        parent = getattr(run, "task", None) or getattr(run, "flow", None)
        return bool(getattr(parent, "isasync", True))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SnsAlert(NotificationBlock):
    """Publishes notifications to a migration's SNS alert topic (the topic the migration provisions)."""

    _block_type_name = "Region Migration SNS Alert"
    _block_type_slug = "region-migration-sns-alert"
    _description = (
        "Sends a notification to an Amazon SNS topic, such as the alert topic a region migration creates. "
        "Use it in Prefect automations or call notify() from a flow; anything that looks like a key or "
        "secret is redacted and the subject is cut to SNS's 100 characters."
    )
    _code_example = """
    from blocks.sns_alert import SnsAlert

    alert = SnsAlert.load("region-migration-alerts")
    alert.notify("Validation found 3 mismatches in analytics-events", subject="region-migration: no-go")
    """

    topic_arn: str = Field(
        default=...,
        title="Topic ARN",
        description="ARN of the SNS topic to publish to, e.g. the migration's alert topic.",
        examples=["arn:aws:sns:eu-west-1:123456789012:migration-alerts-eu-20261128-dev"],
    )
    region: str | None = Field(
        default=None,
        title="Region",
        description="AWS region of the topic; when empty, the region in the topic ARN.",
        examples=["eu-west-1"],
    )
    aws_credentials: AwsCredentials | None = Field(
        default=None,
        title="AWS credentials",
        description=(
            "prefect-aws AwsCredentials block to publish with (its AWS client parameters, such as an "
            "endpoint URL, apply); when empty, the standard AWS credential chain."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        title="Endpoint URL",
        description=(
            "AWS-compatible endpoint (a moto server, LocalStack); overrides the credentials block's "
            "endpoint URL. Empty means the credentials block's endpoint, or AWS."
        ),
        examples=["http://127.0.0.1:5000"],
    )

    @field_validator("topic_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not _TOPIC_ARN_RE.match(v):
            raise ValueError(f"{v!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} must start with http:// or https://")
        return v.rstrip("/") if v else None

    @property
    def topic_region(self) -> str:
        """The region field, else the region in the ARN (validated, so always present)."""
        match = _TOPIC_ARN_RE.match(self.topic_arn)
        return self.region or (match.group(1) if match else "")

    def _client(self) -> Any:
        params: dict[str, Any] = {}
        session: boto3.session.Session
        if self.aws_credentials is not None:
            session = self.aws_credentials.get_boto3_session()
            params = dict(self.aws_credentials.aws_client_parameters.get_params_override())
        else:
            session = boto3.session.Session()
        config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)
        params["config"] = config.merge(params["config"]) if params.get("config") else config
        if self.endpoint_url:
            params["endpoint_url"] = self.endpoint_url
        params["region_name"] = self.topic_region
        return session.client("sns", **params)

    def publish(self, body: str, subject: str | None = None) -> str:
        """Publish one message and return its SNS MessageId; SnsAlertError (redacted) if SNS refuses it."""
        try:
            return send(self._client(), self.topic_arn, subject, body)
        except Exception as err:
            text = redact(f"could not publish to {self.topic_arn}: {type(err).__name__}: {err}")
            self.logger.error(text)
            raise SnsAlertError(text) from err

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Async form (Prefect's automation action awaits notify): boto3 is blocking, so it runs in a thread."""
        await asyncio.to_thread(self.publish, body, subject)

    def notify(  # type: ignore[override]  # sync or async by context, as Prefect's own blocks
        self, body: str, subject: str | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """Send a notification to the topic; raises SnsAlertError (a NotificationError) when SNS refuses it.
        In an async context it returns the coroutine to await instead."""
        if in_async_context():
            return self.anotify(body, subject)
        self.publish(body, subject)
        return None
