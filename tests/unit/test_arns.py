"""Every ARN we build takes its partition from botocore, so aws-cn and aws-us-gov get valid ARNs."""

from __future__ import annotations

import pytest

from blocks.register import topic_arn as block_topic_arn
from config.model import MigrationConfig, parse_config
from tasks import alerts
from tasks.aws import Backend, arn, bucket_arn, bucket_region, partition_of
from tasks.move import s3_plan
from tasks.names import resource_names
from tasks.provision import iam, kms, sns

ACCOUNT = "123456789012"


def china(cfg: MigrationConfig) -> MigrationConfig:
    """The example migration between the two China regions."""
    return parse_config(cfg.model_dump() | {"sourceRegion": "cn-north-1", "targetRegion": "cn-northwest-1"})


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        # Partitions a list of prefixes of our own would get wrong: botocore's endpoint data knows them.
        ("us-iso-east-1", "aws-iso"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_partition_comes_from_botocore(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    # The helpers other modules used to carry are gone or now the same one.
    assert not hasattr(kms, "partition")
    assert s3_plan.partition_of(region) == partition
    assert kms.log_group_arn(region, "123456789012", "g") == f"arn:{partition}:logs:{region}:123456789012:log-group:g"
    assert s3_plan.bucket_arn("b", region) == f"arn:{partition}:s3:::b"


def test_arn_builders() -> None:
    assert arn("sns", "cn-north-1", ACCOUNT, "t") == f"arn:aws-cn:sns:cn-north-1:{ACCOUNT}:t"
    assert bucket_arn("b", "us-gov-east-1") == "arn:aws-us-gov:s3:::b"
    assert sns.topic_arn("us-gov-west-1", ACCOUNT, "t") == f"arn:aws-us-gov:sns:us-gov-west-1:{ACCOUNT}:t"


def test_alert_and_block_topic_arns_follow_the_partition(backend: Backend, cfg: MigrationConfig) -> None:
    cn = china(cfg)
    topic = resource_names(cn).topic
    assert alerts.configure(backend, cn, ACCOUNT) == f"arn:aws-cn:sns:cn-northwest-1:{ACCOUNT}:{topic}"
    assert block_topic_arn(cn, ACCOUNT) == f"arn:aws-cn:sns:cn-northwest-1:{ACCOUNT}:{topic}"
    assert alerts.configure(backend, cfg, ACCOUNT).startswith("arn:aws:sns:eu-west-1:")


def test_role_policies_in_china_name_only_china_arns(cfg: MigrationConfig) -> None:
    cn = china(cfg)
    names = resource_names(cn)
    key = f"arn:aws-cn:kms:cn-northwest-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    topic = sns.topic_arn(cn.target_region, ACCOUNT, names.topic)
    _, lam = iam.lambda_role_policies(cn, ACCOUNT, names, key, topic)
    _, repl = iam.replication_role_policies(
        list(names.buckets), list(names.buckets.values()), key, source_region=cn.source_region
    )
    for policy in (lam, repl):
        resources = iam.policy_resources(policy)
        assert resources and all(r.startswith("arn:aws-cn:") for r in resources), resources
    # The object and log-stream patterns are recognised in any partition, not only in 'aws'.
    assert iam.wildcard_resources(lam) == []
    assert iam.wildcard_resources(repl) == [f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/*"]
    assert f"arn:aws-cn:logs:cn-northwest-1:{ACCOUNT}:log-group:{names.log_group}:*" in iam.policy_resources(lam)


@pytest.mark.parametrize(
    ("answer", "region"), [(None, "us-east-1"), ("", "us-east-1"), ("EU", "eu-west-1"), ("eu-west-1", "eu-west-1")]
)
def test_bucket_region_normalizes_get_bucket_location(answer: str | None, region: str) -> None:
    assert bucket_region(answer) == region


def test_provisioning_asks_sts_for_the_account_once(
    prefect_harness: None, backend: Backend, cfg: MigrationConfig
) -> None:
    """Preflight fetches the account; provisioning (KMS, both topics, both roles, the Lambda, alarms) reuses it:
    one GetCallerIdentity request in all, counted by a botocore event hook on every STS client a step may use."""
    from prefect import flow

    from flows.parts import provision
    from tasks import preflight
    from tasks.aws import MAX_ATTEMPTS

    source, target = cfg.source_region, cfg.target_region
    for bucket in cfg.s3_buckets:
        backend.client("s3", source).create_bucket(Bucket=bucket.name)
    cfg = cfg.model_copy(update={"dynamodb_tables": []})
    calls: list[str] = []
    for region in (source, target):
        for attempts in (MAX_ATTEMPTS, 2):
            events = backend.client("sts", region, max_attempts=attempts).meta.events
            events.register("before-call.sts.GetCallerIdentity", lambda **kw: calls.append(kw["model"].name))

    pf = preflight.check.fn(backend, cfg)
    assert pf.errors == [] and pf.account_id == ACCOUNT

    @flow
    def provision_only() -> dict:
        return provision(backend, cfg, pf.account_id)

    res = provision_only()
    assert res["sns"]["arn"] == alerts_topic(cfg) and res["iam"]["validatorRole"]["arn"]
    assert calls == ["GetCallerIdentity"]


def alerts_topic(cfg: MigrationConfig) -> str:
    from tasks.names import alert_topic_arn

    return alert_topic_arn(cfg, ACCOUNT)
