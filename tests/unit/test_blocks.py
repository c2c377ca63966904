"""The project's Prefect blocks: saved and loaded through ONE Prefect test server (the session harness)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Iterator
from typing import Any, cast

import boto3
import pytest
from prefect.blocks.abstract import NotificationError
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect_aws import AwsClientParameters, AwsCredentials

from blocks import register
from blocks.config_block import MigrationConfigBlock, load_config_block
from blocks.sns_alert import SnsAlert, clean_subject
from config.model import EXAMPLE_CONFIG, ConfigError, load_config
from tasks.aws import Backend
from tasks.names import resource_names

TARGET = "eu-west-1"
SECRET_BODY = "deploy key AKIAABCDEFGHIJKLMNOP leaked? password=hunter2 (should never leave the process)"


@pytest.fixture(autouse=True)
def _no_suffix_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT_SUFFIX", raising=False)


def _creds(region: str = TARGET, endpoint_url: str | None = None) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # type: ignore[arg-type]
        region_name=region,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint_url),
    )


def _topic_with_queue(sns: Any, sqs: Any, name: str) -> tuple[str, str]:
    """A topic with an SQS subscriber: what reaches the queue is what SNS delivered."""
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return arn, queue_url


def _received(sqs: Any, queue_url: str, count: int = 1) -> list[dict[str, Any]]:
    """SNS envelopes (Subject, Message) that reached the queue."""
    got: list[dict[str, Any]] = []
    for _ in range(10):
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        got += [json.loads(m["Body"]) for m in resp.get("Messages", [])]
        if len(got) >= count:
            break
    return got


# ------------------------------------------------------------------ block standards


@pytest.mark.parametrize("cls", [MigrationConfigBlock, SnsAlert, AwsCredentials], ids=lambda c: c.__name__)
def test_every_block_type_has_description_code_example_and_field_descriptions(cls: type[Block]) -> None:
    schema = cls._to_block_schema()
    assert (cls.get_description() or "").strip()
    assert (cls.get_code_example() or "").strip()
    properties = schema.fields["properties"]
    assert properties
    undocumented = [name for name, prop in properties.items() if not str(prop.get("description", "")).strip()]
    assert undocumented == []


def test_sns_alert_is_a_notification_block() -> None:
    assert "notify" in SnsAlert.get_block_capabilities()
    assert "notify" not in MigrationConfigBlock.get_block_capabilities()


# ------------------------------------------------------------------ MigrationConfigBlock


def test_config_block_round_trips_the_example(prefect_harness: None) -> None:
    MigrationConfigBlock.from_file(EXAMPLE_CONFIG).save("test-blocks-config", overwrite=True)

    loaded = cast(MigrationConfigBlock, MigrationConfigBlock.load("test-blocks-config"))

    assert loaded.config == json.loads(EXAMPLE_CONFIG.read_text())
    assert loaded.to_config() == load_config(EXAMPLE_CONFIG)
    assert load_config_block("test-blocks-config") == load_config(EXAMPLE_CONFIG)
    assert loaded.to_config(environment_suffix="qa").environment_suffix == "qa"
    assert resource_names(loaded.to_config(environment_suffix="qa")).topic.endswith("-qa")


def test_config_block_from_a_validated_config(prefect_harness: None) -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    MigrationConfigBlock.from_config(cfg).save("test-blocks-config-model", overwrite=True)

    assert load_config_block("test-blocks-config-model") == cfg


def test_config_block_rejects_an_invalid_config_with_one_line(prefect_harness: None) -> None:
    data = json.loads(EXAMPLE_CONFIG.read_text())
    data["targetRegion"] = data["sourceRegion"]
    MigrationConfigBlock(config=data).save("test-blocks-bad-config", overwrite=True)
    loaded = cast(MigrationConfigBlock, MigrationConfigBlock.load("test-blocks-bad-config"))

    with pytest.raises(ConfigError) as err:
        loaded.to_config()

    message = str(err.value)
    assert "\n" not in message
    assert message == (
        "config block 'test-blocks-bad-config': sourceRegion and targetRegion are both 'us-east-1'; "
        "set targetRegion to another region"
    )
    with pytest.raises(ConfigError, match=r"^config block 'test-blocks-bad-config': sourceRegion and target"):
        load_config_block("test-blocks-bad-config")


def test_config_block_refuses_a_bad_file_before_saving(tmp_path: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(EXAMPLE_CONFIG.read_text()), "s3Bukets": []}))

    with pytest.raises(ConfigError, match=r"s3Bukets: is not a known field") as err:
        MigrationConfigBlock.from_file(bad)
    assert "\n" not in str(err.value)


def test_missing_config_block_is_a_one_line_config_error(prefect_harness: None) -> None:
    with pytest.raises(ConfigError, match=r"^no config block named 'test-blocks-no-such-config'; create it") as err:
        load_config_block("test-blocks-no-such-config")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ SnsAlert


def test_subject_is_cleaned_for_sns() -> None:
    subject = clean_subject("task\nfailed: token=abc123 " + "x" * 200)
    assert len(subject) <= 100
    assert "\n" not in subject
    assert "abc123" not in subject
    assert subject.startswith("task failed: [redacted] x")


def test_sns_alert_client_endpoint_and_region() -> None:
    arn = "arn:aws:sns:eu-west-1:123456789012:alerts"
    from_block = SnsAlert(topic_arn=arn, aws_credentials=_creds("us-east-1", "http://127.0.0.1:4566"))
    explicit = SnsAlert(
        topic_arn=arn, aws_credentials=_creds(endpoint_url="http://127.0.0.1:4566"), endpoint_url="http://h:1/"
    )
    plain = SnsAlert(topic_arn=arn, region="eu-central-1")

    # The topic's region wins over the credentials block's; the block's endpoint applies unless overridden.
    assert from_block._client().meta.region_name == TARGET
    assert from_block._client().meta.endpoint_url == "http://127.0.0.1:4566"
    assert explicit._client().meta.endpoint_url == "http://h:1"
    assert plain._client().meta.region_name == "eu-central-1"
    assert plain._client().meta.endpoint_url == "https://sns.eu-central-1.amazonaws.com"


def test_sns_alert_rejects_a_malformed_topic_arn() -> None:
    with pytest.raises(ValueError, match="is not an SNS topic ARN"):
        SnsAlert(topic_arn="migration-alerts")


def test_sns_alert_notify_delivers_to_a_subscribed_queue(prefect_harness: None, backend: Backend) -> None:
    sns, sqs = backend.client("sns", TARGET), backend.client("sqs", TARGET)
    arn, queue_url = _topic_with_queue(sns, sqs, "test-blocks-alerts")
    SnsAlert(topic_arn=arn, aws_credentials=_creds()).save("test-blocks-alert", overwrite=True)
    alert = cast(SnsAlert, SnsAlert.load("test-blocks-alert"))
    assert alert.aws_credentials is not None and alert.aws_credentials.region_name == TARGET

    result = alert.notify(SECRET_BODY, subject="region-migration batch-001:\ntask failed " + "y" * 150)

    assert result is None  # sync context: ran, not a coroutine
    (envelope,) = _received(sqs, queue_url)
    assert envelope["TopicArn"] == arn
    assert "AKIAABCDEFGHIJKLMNOP" not in envelope["Message"] and "hunter2" not in envelope["Message"]
    assert envelope["Message"].startswith("deploy key [redacted] leaked? [redacted]")
    assert len(envelope["Subject"]) == 100
    assert envelope["Subject"].startswith("region-migration batch-001: task failed yyy")


def test_sns_alert_notify_is_awaitable_in_an_async_context(prefect_harness: None, backend: Backend) -> None:
    """Prefect's automation action does `await block.notify(...)` on the server."""
    sns, sqs = backend.client("sns", TARGET), backend.client("sqs", TARGET)
    arn, queue_url = _topic_with_queue(sns, sqs, "test-blocks-async-alerts")
    alert = SnsAlert(topic_arn=arn, aws_credentials=_creds())

    async def automation() -> None:
        with alert.raise_on_failure():
            await cast(Awaitable[None], alert.notify("flow run crashed", subject="automation"))

    asyncio.run(automation())

    (envelope,) = _received(sqs, queue_url)
    assert (envelope["Subject"], envelope["Message"]) == ("automation", "flow run crashed")


def test_sns_alert_notify_from_a_sync_flow(prefect_harness: None, backend: Backend) -> None:
    """Flows and tasks here are sync: notify must run, not hand back an un-awaited coroutine."""
    from prefect import flow

    sns, sqs = backend.client("sns", TARGET), backend.client("sqs", TARGET)
    arn, queue_url = _topic_with_queue(sns, sqs, "test-blocks-flow-alerts")
    SnsAlert(topic_arn=arn, aws_credentials=_creds()).save("test-blocks-flow-alert", overwrite=True)

    @flow(name="test-blocks-notify")
    def notify_from_flow() -> None:
        cast(SnsAlert, SnsAlert.load("test-blocks-flow-alert")).notify("from a flow", subject="flow")

    notify_from_flow()

    (envelope,) = _received(sqs, queue_url)
    assert (envelope["Subject"], envelope["Message"]) == ("flow", "from a flow")


def test_sns_alert_notify_is_awaitable_in_an_async_flow(prefect_harness: None, backend: Backend) -> None:
    """Inside an async flow notify must hand back the awaitable, as Prefect's own notification blocks do."""
    from prefect import flow

    sns, sqs = backend.client("sns", TARGET), backend.client("sqs", TARGET)
    arn, queue_url = _topic_with_queue(sns, sqs, "test-blocks-async-flow-alerts")
    alert = SnsAlert(topic_arn=arn, aws_credentials=_creds())

    @flow(name="test-blocks-async-notify")
    async def notify_from_async_flow() -> None:
        await cast(Awaitable[None], alert.notify("from an async flow", subject="async flow"))

    asyncio.run(notify_from_async_flow())

    (envelope,) = _received(sqs, queue_url)
    assert (envelope["Subject"], envelope["Message"]) == ("async flow", "from an async flow")


def test_sns_alert_uses_no_private_prefect_api_and_the_one_alert_path() -> None:
    import inspect

    from blocks import sns_alert
    from tasks import alerts

    assert "prefect._internal" not in inspect.getsource(sns_alert)
    assert sns_alert.clean_subject is alerts.clean_subject and sns_alert.send is alerts.send


def test_sns_alert_failure_raises_a_redacted_notification_error(backend: Backend) -> None:
    alert = SnsAlert(topic_arn="arn:aws:sns:eu-west-1:123456789012:test-blocks-missing", aws_credentials=_creds())

    with alert.raise_on_failure(), pytest.raises(NotificationError) as err:
        alert.notify("body")

    assert "could not publish to arn:aws:sns:eu-west-1:123456789012:test-blocks-missing" in err.value.log
    assert "NotFound" in str(err.value)


# ------------------------------------------------------------------ python -m blocks.register


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A moto server on loopback, for blocks whose endpoint is stored in them (the emulator's path)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_register_creates_the_four_example_blocks_idempotently(
    prefect_harness: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    endpoint = "http://127.0.0.1:4566"

    assert register.main(["--endpoint-url", endpoint + "/"]) == 0
    assert register.main(["--endpoint-url", endpoint]) == 0  # a second run converges

    out = capsys.readouterr().out
    for name in ("region-migration-source", "region-migration-target", "region-migration-example"):
        assert f"saved block {name}:" in out
    assert "saved block region-migration-alerts:" in out
    assert "registered block type region-migration-sns-alert" in out

    for name, region in (("region-migration-source", "us-east-1"), ("region-migration-target", "eu-west-1")):
        creds = cast(AwsCredentials, AwsCredentials.load(name))
        assert creds.region_name == region
        assert creds.aws_access_key_id == "testing"
        assert creds.aws_secret_access_key is not None
        assert creds.aws_secret_access_key.get_secret_value() == "testing"
        assert creds.aws_client_parameters.endpoint_url == endpoint

    example = cast(MigrationConfigBlock, MigrationConfigBlock.load("region-migration-example"))
    assert example.to_config() == cfg

    alert = cast(SnsAlert, SnsAlert.load("region-migration-alerts"))
    assert alert.topic_arn == f"arn:aws:sns:eu-west-1:123456789012:{resource_names(cfg).topic}"
    assert alert.region == "eu-west-1"
    assert alert.aws_credentials is not None
    assert alert.aws_credentials.region_name == "eu-west-1"
    assert alert.aws_credentials.aws_client_parameters.endpoint_url == endpoint

    with get_client(sync_client=True) as client:
        for slug in ("region-migration-config", "region-migration-sns-alert", "aws-credentials"):
            block_type = client.read_block_type_by_slug(slug)
            assert block_type.description and block_type.code_example
        names = [d.name for d in client.read_block_documents()]
    for name in ("region-migration-source", "region-migration-target", "region-migration-example"):
        assert names.count(name) == 1
    assert names.count("region-migration-alerts") == 1


def test_registered_alert_reaches_the_emulator_through_the_credentials_block(
    prefect_harness: None, moto_server: str
) -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    sns = session.client("sns", region_name=TARGET, endpoint_url=moto_server)
    sqs = session.client("sqs", region_name=TARGET, endpoint_url=moto_server)
    arn, queue_url = _topic_with_queue(sns, sqs, resource_names(cfg).topic)

    assert register.main(["--endpoint-url", moto_server]) == 0
    alert = cast(SnsAlert, SnsAlert.load("region-migration-alerts"))
    assert alert.topic_arn == arn
    alert.notify("validation: no-go", subject="region-migration batch-001")

    (envelope,) = _received(sqs, queue_url)
    assert (envelope["Subject"], envelope["Message"]) == ("region-migration batch-001", "validation: no-go")


def test_register_rejects_a_bad_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert register.main(["--endpoint-url", "localhost:4566"]) == 2
    assert capsys.readouterr().err == "error: --endpoint-url 'localhost:4566' must start with http:// or https://\n"


# ------------------------------------------------------------------ Backend + credentials blocks


def test_backend_uses_the_endpoint_stored_in_the_credentials_blocks(prefect_harness: None, moto_server: str) -> None:
    """`python -m blocks.register` blocks + `--aws --source/--target-credentials-block` reach the emulator."""
    from tasks.aws import clear_client_cache

    assert register.main(["--endpoint-url", moto_server]) == 0
    clear_client_cache()
    backend = Backend(
        kind="aws",
        credentials_blocks=(("us-east-1", "region-migration-source"), ("eu-west-1", "region-migration-target")),
    )
    try:
        source, target = backend.client("s3", "us-east-1"), backend.client("s3", TARGET)
        assert source.meta.endpoint_url == target.meta.endpoint_url == moto_server
        assert target.meta.config.s3["addressing_style"] == "path"
        source.create_bucket(Bucket="test-blocks-src")
        target.create_bucket(Bucket="test-blocks-dst", CreateBucketConfiguration={"LocationConstraint": TARGET})
        assert backend.client("sts", TARGET).get_caller_identity()["Account"] == "123456789012"
    finally:
        clear_client_cache()
    direct = boto3.client(
        "s3", region_name="us-east-1", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="x"
    )
    buckets = {b["Name"] for b in direct.list_buckets()["Buckets"]}
    assert {"test-blocks-src", "test-blocks-dst"} <= buckets


def test_backend_applies_the_blocks_client_parameters(prefect_harness: None) -> None:
    """verify=False and the block's botocore config reach every client; our retry mode and timeouts stay."""
    from tasks.aws import clear_client_cache

    AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # type: ignore[arg-type]
        region_name=TARGET,
        aws_client_parameters=AwsClientParameters(
            endpoint_url="https://127.0.0.1:9",
            verify=False,
            config={"connect_timeout": 3, "retries": {"max_attempts": 4}},
        ),
    ).save("test-client-parameters", overwrite=True)
    clear_client_cache()
    try:
        backend = Backend(kind="aws", credentials_blocks=((TARGET, "test-client-parameters"),))
        for service in ("s3", "dynamodb", "sts"):
            client = backend.client(service, TARGET)
            assert client.meta.endpoint_url == "https://127.0.0.1:9"
            assert client._endpoint.http_session._verify is False
            assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 120)
            # max_attempts counts retries; botocore keeps it as total_max_attempts, the first call included
            assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    finally:
        clear_client_cache()
