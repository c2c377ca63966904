"""The KMS-encrypted SNS topics that receive alerts: the target region's (failed tasks, alarms, Lambda dead
letters) and the source region's (the S3 replication alarms there: an alarm's SNS action must be in its own
region, so they cannot use the target topic)."""

from __future__ import annotations

from functools import partial
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, tag_dict, tag_list
from tasks.errors import CollisionError
from tasks.names import resource_names, topic_arn
from tasks.provision.common import delete_measured, lookup
from tasks.steps import step


def _attributes(sns: Any, arn: str) -> dict[str, str] | None:
    resp = lookup(sns.get_topic_attributes, TopicArn=arn)
    return dict(resp["Attributes"]) if resp else None


@step("provision-topic")
def ensure_topic(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    """Create or converge the target-region alert topic under the migration CMK."""
    return _ensure(backend, cfg, cfg.target_region, resource_names(cfg).topic, kms_key_arn)


def ensure_source_topic(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    """Create or converge the source-region alert topic under the source region's own key (nothing is
    subscribed: the user subscribes the on-call endpoints)."""
    return _ensure(backend, cfg, cfg.source_region, resource_names(cfg).source_topic, kms_key_arn)


def _ensure(backend: Backend, cfg: MigrationConfig, region: str, name: str, kms_key_arn: str) -> dict[str, Any]:
    """Create or converge one alert topic (CMK encryption, tags); return it read back plus created/repaired.

    CreateTopic is idempotent in AWS, so we look first: that tells us whether we created it and lets us
    refuse a same-named topic someone else owns instead of silently adopting it.
    """
    sns = backend.client("sns", region)
    arn = topic_arn(region, backend.account_id(region), name)
    created = False
    repaired: list[str] = []

    attrs = _attributes(sns, arn)
    if attrs is None:
        arn = sns.create_topic(Name=name, Attributes={"KmsMasterKeyId": kms_key_arn}, Tags=tag_list(cfg.tags()))[
            "TopicArn"
        ]
        created = True
    else:
        if not cfg.owns(topic_tags(sns, arn)):
            raise CollisionError(
                f"SNS topic {name} already exists in {region} but this migration did not create it "
                "(tags lack ManagedBy/MigrationBatch/Environment); delete it or change "
                "timestamp/environmentSuffix"
            )
        if attrs.get("KmsMasterKeyId") != kms_key_arn:
            sns.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=kms_key_arn)
            repaired.append("kmsMasterKeyId")

    tags = topic_tags(sns, arn)
    missing = {k: v for k, v in cfg.tags().items() if tags.get(k) != v}
    if missing:
        sns.tag_resource(ResourceArn=arn, Tags=tag_list(missing))
        if not created:
            repaired.append("tags")

    return describe_topic(backend, region, arn) | {"created": created, "repaired": repaired}


def describe_topic(backend: Backend, region: str, arn: str) -> dict[str, Any]:
    """The topic as the backend reports it (read-only; reused by the report)."""
    sns = backend.client("sns", region)
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    return {
        "arn": arn,
        "name": arn.rsplit(":", 1)[-1],
        "region": region,
        "kmsMasterKeyId": attrs.get("KmsMasterKeyId"),
        "tags": topic_tags(sns, arn),
    }


def topic_tags(sns: Any, arn: str) -> dict[str, str]:
    return tag_dict(sns.list_tags_for_resource(ResourceArn=arn).get("Tags"))


# ---------------------------------------------------------------- find / delete (teardown, preflight)


def find_topic(backend: Backend, cfg: MigrationConfig, region: str, name: str, account: str) -> dict[str, Any] | None:
    """The topic with our name in `region`, and whether its tags say it is ours (None: no such topic)."""
    sns = backend.client("sns", region)
    arn = topic_arn(region, account, name)
    if _attributes(sns, arn) is None:
        return None
    return {"name": name, "arn": arn, "region": region, "owned": cfg.owns(topic_tags(sns, arn))}


def delete_topic(backend: Backend, region: str, arn: str) -> dict[str, Any]:
    sns = backend.client("sns", region)
    return delete_measured(partial(sns.delete_topic, TopicArn=arn), partial(_attributes, sns, arn))
