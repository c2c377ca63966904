"""The validation Lambda's provisioning: reproducible package, create/repair read back from moto."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision import iam
from tasks.provision import lambda_ as lam_mod

REGION = "eu-west-1"


def test_package_is_reproducible() -> None:
    a, b = lam_mod.build_package(), lam_mod.build_package()
    assert a == b
    assert lam_mod.code_sha256(a) == lam_mod.code_sha256(b)
    with zipfile.ZipFile(io.BytesIO(a)) as zf:
        names = zf.namelist()
        assert "handler.py" in names
        assert names == sorted(names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"def handler(" in zf.read("handler.py")


def test_configuration_drift_pure(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    desired = lam_mod.desired_configuration(cfg, names, "arn:role", "arn:topic", "arn:key")
    same = {k: v for k, v in desired.items() if k != "FunctionName"}
    assert lam_mod.configuration_drift(same, desired) == []
    assert lam_mod.configuration_drift(same | {"MemorySize": 512}, desired) == ["memorySize"]
    no_dlq = {k: v for k, v in same.items() if k != "DeadLetterConfig"}
    assert lam_mod.configuration_drift(no_dlq, desired) == ["deadLetterTarget"]
    env = desired["Environment"]["Variables"]
    assert env["BUCKETS"].split(",") == sorted(names.buckets.values())
    assert env["TOPIC_ARN"] == "arn:topic" and env["TARGET_REGION"] == REGION


def _prereqs(backend: Backend, cfg: MigrationConfig) -> dict[str, str]:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    topic = backend.client("sns", REGION).create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    role = iam.ensure_lambda_role(backend, cfg, key, topic)["arn"]
    return {"role_arn": role, "topic_arn": topic, "kms_key_arn": key}


def _dlq_is_measured(out: dict[str, Any], topic: str) -> None:
    # Never the intended value copied: either read back, or said to be unmeasured.
    if out["deadLetterTarget"] is None:
        assert out["deadLetterTargetMeasured"] == lam_mod.NOT_RETURNED
        assert "DeadLetterConfig read-back" in out["notSupportedByBackend"]
    else:
        assert out["deadLetterTarget"] == topic and out["deadLetterTargetMeasured"] == "read back"


def test_ensure_validator_creates_then_converges(backend: Backend, cfg: MigrationConfig) -> None:
    p = _prereqs(backend, cfg)
    names = resource_names(cfg)
    out = lam_mod.ensure_validator(backend, cfg, **p)
    assert out["created"] is True and out["repaired"] == []
    assert out["name"] == names.lambda_function
    assert out["runtime"] == "python3.12" and out["handler"] == "handler.handler"
    assert out["memorySize"] == 256
    assert out["reservedConcurrency"] == 5
    assert out["kmsKeyArn"] == p["kms_key_arn"]
    assert out["role"] == p["role_arn"]
    assert out["codeSha256"] == lam_mod.code_sha256(lam_mod.build_package())
    assert out["codeMatchesPackage"] is True
    assert out["logGroup"] == {
        "name": names.log_group,
        "arn": out["logGroup"]["arn"],
        "retentionDays": 30,
        "kmsKeyId": p["kms_key_arn"],
    }
    assert cfg.owns(out["tags"])
    assert set(out["environmentKeys"]) >= {"TARGET_REGION", "TOPIC_ARN", "BUCKETS", "TABLES"}
    _dlq_is_measured(out, p["topic_arn"])

    again = lam_mod.ensure_validator(backend, cfg, **p)
    assert again["created"] is False and again["repaired"] == []
    assert again["codeSha256"] == out["codeSha256"]
    lam = backend.client("lambda", REGION)
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]].count(names.lambda_function) == 1
    groups = backend.client("logs", REGION).describe_log_groups(logGroupNamePrefix=names.log_group)["logGroups"]
    assert len(groups) == 1
    tags = backend.client("logs", REGION).list_tags_for_resource(resourceArn=out["logGroup"]["arn"])["tags"]
    assert cfg.owns(tags)


def test_drift_is_repaired(backend: Backend, cfg: MigrationConfig) -> None:
    p = _prereqs(backend, cfg)
    names = resource_names(cfg)
    lam_mod.ensure_validator(backend, cfg, **p)
    lam = backend.client("lambda", REGION)
    logs = backend.client("logs", REGION)
    lam.update_function_configuration(FunctionName=names.lambda_function, MemorySize=512, Timeout=3)
    lam.delete_function_concurrency(FunctionName=names.lambda_function)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return 'tampered'\n")
    lam.update_function_code(FunctionName=names.lambda_function, ZipFile=buf.getvalue())
    logs.put_retention_policy(logGroupName=names.log_group, retentionInDays=7)

    fixed = lam_mod.ensure_validator(backend, cfg, **p)
    assert fixed["created"] is False
    assert set(fixed["repaired"]) == {"memorySize", "timeout", "reservedConcurrency", "code", "logGroup.retentionDays"}
    assert fixed["memorySize"] == 256 and fixed["timeout"] == lam_mod.TIMEOUT_S
    assert fixed["reservedConcurrency"] == 5
    assert fixed["codeMatchesPackage"] is True
    assert fixed["logGroup"]["retentionDays"] == 30
    _dlq_is_measured(fixed, p["topic_arn"])
    assert lam_mod.ensure_validator(backend, cfg, **p)["repaired"] == []


def test_role_propagation_is_retried(backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    topic = backend.client("sns", REGION).create_topic(Name="t")["TopicArn"]
    names = resource_names(cfg)
    role_arn = f"arn:aws:iam::123456789012:role/{names.lambda_role}"
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # The role "propagates" during the first back-off: create it then.
        if not sleeps:
            trust, policy = iam.lambda_role_policies(cfg, "123456789012", names, key, topic)
            iam.ensure_role(backend, cfg, names.lambda_role, trust, policy, "d")
        sleeps.append(seconds)

    monkeypatch.setattr(lam_mod.time, "sleep", sleep)
    out = lam_mod.ensure_validator(backend, cfg, role_arn, topic, key)
    assert out["created"] is True and out["role"] == role_arn
    assert sleeps == [lam_mod.ROLE_PROPAGATION_DELAYS[0]]


def test_role_that_never_appears_fails(backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    sleeps: list[float] = []
    monkeypatch.setattr(lam_mod.time, "sleep", sleeps.append)
    with pytest.raises(Exception, match="cannot be assumed"):
        lam_mod.ensure_validator(backend, cfg, "arn:aws:iam::123456789012:role/nope", "arn:aws:sns:eu-west-1:1:t", key)
    assert sleeps == list(lam_mod.ROLE_PROPAGATION_DELAYS)


def test_foreign_function_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    p = _prereqs(backend, cfg)
    names = resource_names(cfg)
    backend.client("lambda", REGION).create_function(
        FunctionName=names.lambda_function,
        Runtime="python3.12",
        Role=p["role_arn"],
        Handler="x.y",
        Code={"ZipFile": lam_mod.build_package()},
    )
    with pytest.raises(CollisionError, match=names.lambda_function):
        lam_mod.ensure_validator(backend, cfg, **p)


def test_foreign_log_group_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    p = _prereqs(backend, cfg)
    backend.client("logs", REGION).create_log_group(logGroupName=resource_names(cfg).log_group)
    with pytest.raises(CollisionError, match="log group"):
        lam_mod.ensure_validator(backend, cfg, **p)
    assert backend.client("lambda", REGION).list_functions()["Functions"] == []
