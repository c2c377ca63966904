"""The alert topic: created encrypted and tagged, found again on re-runs, repaired, never adopted if foreign."""

from __future__ import annotations

from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend, tag_dict
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision.kms import ensure_source_key
from tasks.provision.sns import ensure_source_topic, ensure_topic, topic_arn

TARGET = "eu-west-1"


def sns(backend: Backend) -> Any:
    return backend.client("sns", TARGET)


def new_key(backend: Backend) -> str:
    return str(backend.client("kms", TARGET).create_key()["KeyMetadata"]["Arn"])


def test_topic_arn_is_predictable() -> None:
    assert topic_arn("eu-west-1", "123456789012", "t") == "arn:aws:sns:eu-west-1:123456789012:t"
    assert topic_arn("cn-north-1", "1", "t").startswith("arn:aws-cn:sns:")


def test_ensure_topic_creates_encrypted_tagged_topic(backend: Backend, cfg: MigrationConfig) -> None:
    key = new_key(backend)
    out = ensure_topic.fn(backend, cfg, key)
    name = resource_names(cfg).topic
    assert out["created"] is True and out["repaired"] == []
    assert out["name"] == name == "migration-alerts-eu-20261128-dev"
    assert out["arn"] == f"arn:aws:sns:{TARGET}:123456789012:{name}"
    assert out["kmsMasterKeyId"] == key
    # Straight from moto.
    attrs = sns(backend).get_topic_attributes(TopicArn=out["arn"])["Attributes"]
    assert attrs["KmsMasterKeyId"] == key
    assert tag_dict(sns(backend).list_tags_for_resource(ResourceArn=out["arn"])["Tags"]) == cfg.tags()


def test_ensure_topic_twice_creates_nothing_new(backend: Backend, cfg: MigrationConfig) -> None:
    key = new_key(backend)
    first = ensure_topic.fn(backend, cfg, key)
    second = ensure_topic.fn(backend, cfg, key)
    assert second["created"] is False and second["repaired"] == []
    assert second["arn"] == first["arn"]
    assert [t["TopicArn"] for t in sns(backend).list_topics()["Topics"]] == [first["arn"]]


def test_ensure_topic_repairs_key_and_tags(backend: Backend, cfg: MigrationConfig) -> None:
    key = new_key(backend)
    arn = ensure_topic.fn(backend, cfg, key)["arn"]
    sns(backend).set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue="alias/aws/sns")
    sns(backend).untag_resource(ResourceArn=arn, TagKeys=["SourceRegion"])
    out = ensure_topic.fn(backend, cfg, key)
    assert sorted(out["repaired"]) == ["kmsMasterKeyId", "tags"]
    assert sns(backend).get_topic_attributes(TopicArn=arn)["Attributes"]["KmsMasterKeyId"] == key
    assert out["tags"] == cfg.tags()


def test_foreign_topic_with_our_name_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    sns(backend).create_topic(Name=resource_names(cfg).topic)
    with pytest.raises(CollisionError) as exc:
        ensure_topic.fn(backend, cfg, new_key(backend))
    assert resource_names(cfg).topic in str(exc.value) and "\n" not in str(exc.value)


def test_source_topic_lives_in_the_source_region_under_its_own_key(backend: Backend, cfg: MigrationConfig) -> None:
    """The S3 replication alarms' topic: in the source region (an alarm's action must be in its region),
    encrypted with the source region's own key, tagged, subscribed to nothing, found again on a re-run."""
    key = ensure_source_key(backend, cfg, "123456789012")["arn"]
    out = ensure_source_topic(backend, cfg, key)
    name = resource_names(cfg).source_topic
    assert out["created"] is True and out["region"] == "us-east-1" and out["name"] == name
    assert out["arn"] == f"arn:aws:sns:us-east-1:123456789012:{name}"
    src = backend.client("sns", "us-east-1")
    assert src.get_topic_attributes(TopicArn=out["arn"])["Attributes"]["KmsMasterKeyId"] == key
    assert tag_dict(src.list_tags_for_resource(ResourceArn=out["arn"])["Tags"]) == cfg.tags()
    assert src.list_subscriptions_by_topic(TopicArn=out["arn"])["Subscriptions"] == []
    assert sns(backend).list_topics()["Topics"] == []  # nothing in the target region
    again = ensure_source_topic(backend, cfg, key)
    assert again["created"] is False and again["repaired"] == []
    assert [t["TopicArn"] for t in src.list_topics()["Topics"]] == [out["arn"]]
