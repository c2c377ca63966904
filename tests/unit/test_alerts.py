"""The one alert path (tasks.alerts): pure message building without moto, then delivery and target lookup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.model import EXAMPLE_CONFIG, MigrationConfig
from flows.common import RunOptions
from tasks import alerts
from tasks.aws import Backend
from tasks.names import alert_topic_arn, resource_names

ARN = "arn:aws:sns:eu-west-1:123456789012:migration-alerts-eu-20261128-dev"


# ------------------------------------------------------------------ pure


def test_alert_request_is_redacted_with_a_valid_subject() -> None:
    request = alerts.alert(ARN, "task\r\nfailed: password=hunter2 " + "z" * 300, "key AKIAABCDEFGHIJKLMNOP in\nbody")

    assert request["TopicArn"] == ARN
    assert request["Message"] == "key [redacted] in\nbody"  # the body keeps its lines
    subject = request["Subject"]
    assert len(subject) <= alerts.SUBJECT_MAX
    assert not any(ord(c) < 32 or ord(c) == 127 for c in subject)
    assert subject.startswith("task failed: [redacted] zzz")
    assert "MessageGroupId" not in request


def test_alert_request_without_subject_or_body() -> None:
    assert alerts.alert(ARN, None, "") == {"TopicArn": ARN, "Message": "(empty message)"}
    assert "Subject" not in alerts.alert(ARN, " \n\t ", "b")  # nothing left: no Subject at all


def test_alert_request_on_a_fifo_topic_has_group_and_unique_deduplication_id() -> None:
    fifo = ARN + ".fifo"
    first, second = alerts.alert(fifo, "s", "b"), alerts.alert(fifo, "s", "b")
    assert first["MessageGroupId"] == "region-migration"
    assert first["MessageDeduplicationId"] != second["MessageDeduplicationId"]


def test_failure_messages() -> None:
    subject, body = alerts.task_failure("batch-001", "copy", "copy-b", "migrate/run", 3, "boom")
    assert subject == "region-migration batch-001: task copy failed"
    assert body == "Flow run: migrate/run\nTask run: copy-b\nTask: copy\nAttempts: 3\nError: boom"
    subject, body = alerts.flow_failure("batch-001", "sync", "run-1", "Crashed", "killed")
    assert subject == "region-migration batch-001: flow sync crashed"
    assert body == "Flow run: sync/run-1\nState: Crashed\nError: killed"


def test_a_long_task_name_still_makes_a_valid_subject() -> None:
    subject, _ = alerts.task_failure("b" * 64, "t" * 80, "r", "f", 1, "e")
    assert len(alerts.alert(ARN, subject, "x")["Subject"]) == alerts.SUBJECT_MAX


def test_configure_stores_nothing_and_names_the_topic(backend: Backend, cfg: MigrationConfig) -> None:
    assert alerts.configure(backend, cfg, "123456789012") == alert_topic_arn(cfg, "123456789012")
    assert not [name for name, value in vars(alerts).items() if isinstance(value, dict) and name.isupper()]


# ------------------------------------------------------------------ delivery and target


def _inbox(backend: Backend, cfg: MigrationConfig) -> tuple[Any, str]:
    sns, sqs = backend.client("sns", cfg.target_region), backend.client("sqs", cfg.target_region)
    topic = sns.create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    queue = sqs.create_queue(QueueName="test-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return sqs, queue


def test_target_comes_from_the_run_options(backend: Backend, cfg: MigrationConfig, tmp_path: Path) -> None:
    options = RunOptions(config_path=str(EXAMPLE_CONFIG), use_aws=True)

    for parameters in ({"options": options}, {"options": options.model_dump()}):  # in process / from the API
        target = alerts.target_of(parameters)
        assert target is not None
        assert target.topic_arn == alert_topic_arn(cfg, "123456789012")
        assert (target.region, target.batch) == (cfg.target_region, cfg.migration_batch)

    assert alerts.target_of({}) is None  # a flow without options
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sourceRegion": "us-east-1"}))
    assert alerts.target_of({"options": RunOptions(config_path=str(bad), use_aws=True)}) is None


def test_publish_to_delivers_once_and_never_raises(
    backend: Backend, cfg: MigrationConfig, caplog: pytest.LogCaptureFixture
) -> None:
    sqs, queue = _inbox(backend, cfg)
    target = alerts.target_of({"options": RunOptions(config_path=str(EXAMPLE_CONFIG), use_aws=True)})

    assert alerts.publish_to(target, "region-migration: no-go\n", "token=abc123 mismatches") is True
    (msg,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(msg["Body"])
    assert (envelope["Subject"], envelope["Message"]) == ("region-migration: no-go", "[redacted] mismatches")

    assert target is not None
    missing = alerts.AlertTarget(target.backend, target.region, ARN.replace("-dev", "-gone"), target.batch)
    assert alerts.publish_to(missing, "s", "secret=xyz") is False
    assert alerts.publish_to(None, "s", "b") is False
    assert "xyz" not in caplog.text and "could not be published" in caplog.text
