"""The validation Lambda's provisioning: reproducible package, create/repair read back from moto."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from config.model import MigrationConfig
from tasks import consistency
from tasks.aws import Backend
from tasks.consistency import NotConsistentError
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


def test_package_is_small_and_ships_the_shared_digest() -> None:
    package = lam_mod.build_package()
    assert len(package) < 50 * 1024, f"package grew to {len(package)} bytes"
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        assert zf.namelist() == ["digest.py", "handler.py", "validator_input.py"]
        # The flow's own files, byte for byte: one comparison, not two copies drifting apart.
        for name in ("digest.py", "validator_input.py"):
            assert zf.read(name) == lam_mod.SHARED_MODULES[name].read_bytes()
        assert {i.external_attr >> 16 for i in zf.infolist()} == {0o100644}


def test_shared_module_may_not_replace_a_package_file(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("def handler(e, c):\n    return e\n")
    (tmp_path / "digest.py").write_text("# a stale copy\n")
    with pytest.raises(ValueError, match=r"digest\.py"):
        lam_mod.build_package(tmp_path)
    assert zipfile.ZipFile(io.BytesIO(lam_mod.build_package(tmp_path, shared={}))).namelist() == [
        "digest.py",
        "handler.py",
    ]


def test_package_runs_standalone(tmp_path: Path) -> None:
    """Unzipped alone (as in /var/task), the handler imports digest.py from the zip and no pandas."""
    zipfile.ZipFile(io.BytesIO(lam_mod.build_package())).extractall(tmp_path)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler\n"
        "assert handler.digest.__file__.startswith(sys.argv[1]), handler.digest.__file__\n"
        "assert 'pandas' not in sys.modules and 'tasks' not in sys.modules, sorted(sys.modules)\n"
        "print(handler.digest.compare_keys({'a': 1, 'b': 2}, {'b': 3, 'c': None}))\n"
    )
    # -I: no PYTHONPATH, no cwd on sys.path; run from tmp_path so the repository is out of reach.
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'missing': ['a'], 'extra': ['c'], 'different': ['b']}"


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
    assert env["SOURCE_REGION"] == cfg.source_region
    assert env["BUCKET_PAIRS"] == ",".join(f"{s}={names.buckets[s]}" for s in sorted(names.buckets))
    assert env["TABLE_PAIRS"] == ",".join(f"{s}={names.tables[s]}" for s in sorted(names.tables))


def _prereqs(backend: Backend, cfg: MigrationConfig) -> dict[str, str]:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    topic = backend.client("sns", REGION).create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    role = iam.ensure_lambda_role.fn(backend, cfg, key, topic)["arn"]
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
    out = lam_mod.ensure_validator.fn(backend, cfg, **p)
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
    assert set(out["environmentKeys"]) >= {
        "TARGET_REGION",
        "SOURCE_REGION",
        "TOPIC_ARN",
        "BUCKETS",
        "TABLES",
        "BUCKET_PAIRS",
        "TABLE_PAIRS",
    }
    _dlq_is_measured(out, p["topic_arn"])

    again = lam_mod.ensure_validator.fn(backend, cfg, **p)
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
    lam_mod.ensure_validator.fn(backend, cfg, **p)
    lam = backend.client("lambda", REGION)
    logs = backend.client("logs", REGION)
    lam.update_function_configuration(FunctionName=names.lambda_function, MemorySize=512, Timeout=3)
    lam.delete_function_concurrency(FunctionName=names.lambda_function)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return 'tampered'\n")
    lam.update_function_code(FunctionName=names.lambda_function, ZipFile=buf.getvalue())
    logs.put_retention_policy(logGroupName=names.log_group, retentionInDays=7)

    fixed = lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert fixed["created"] is False
    assert set(fixed["repaired"]) == {"memorySize", "timeout", "reservedConcurrency", "code", "logGroup.retentionDays"}
    assert fixed["memorySize"] == 256 and fixed["timeout"] == lam_mod.TIMEOUT_S
    assert fixed["reservedConcurrency"] == 5
    assert fixed["codeMatchesPackage"] is True
    assert fixed["logGroup"]["retentionDays"] == 30
    _dlq_is_measured(fixed, p["topic_arn"])
    assert lam_mod.ensure_validator.fn(backend, cfg, **p)["repaired"] == []


class _Http:
    status_code = 400


def _answer(client: Any, op: str, answers: list[tuple[str, str]]) -> list[str]:
    """Make `op` on client answer the given AWS errors first (botocore raises its own error class for each,
    as for a real response), then reach the backend again; returns the list of answers given."""
    given: list[str] = []

    def before_call(**_: Any) -> Any:
        if len(given) >= len(answers):
            return None
        code, message = answers[len(given)]
        given.append(message)
        return _Http(), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    client.meta.events.register(f"before-call.lambda.{op}", before_call)
    return given


CANNOT_ASSUME = ("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")
NO_PUBLISH = (
    "InvalidParameterValueException",
    "The provided execution role does not have permissions to call Publish on SNS",
)
KMS_GRANT = (
    "InvalidParameterValueException",
    "Lambda was unable to configure access to your environment variables because the KMS key is invalid for "
    "CreateGrant. Please check your KMS key settings. KMS Exception: AccessDeniedException",
)


def test_role_propagation_is_retried(backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto itself answers "cannot be assumed" while the role does not exist: it appears during the first wait."""
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    topic = backend.client("sns", REGION).create_topic(Name="t")["TopicArn"]
    names = resource_names(cfg)
    role_arn = f"arn:aws:iam::123456789012:role/{names.lambda_role}"
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if not sleeps:
            trust, policy = iam.lambda_role_policies(cfg, "123456789012", names, key, topic)
            iam.ensure_role(backend, cfg, names.lambda_role, trust, policy, "d")
        sleeps.append(seconds)

    monkeypatch.setattr(consistency, "_sleep", sleep)
    out = lam_mod.ensure_validator.fn(backend, cfg, role_arn, topic, key)
    assert out["created"] is True and out["role"] == role_arn
    assert len(sleeps) == 1


def test_dead_letter_and_kms_lags_are_retried_on_create(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _prereqs(backend, cfg)
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    given = _answer(backend.client("lambda", REGION), "CreateFunction", [NO_PUBLISH, NO_PUBLISH, KMS_GRANT])
    out = lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert out["created"] is True and len(given) == 3 and len(sleeps) == 3
    assert all(0 <= s <= lam_mod.LAMBDA_CONSISTENCY_BUDGET_S for s in sleeps)


def test_update_configuration_lag_is_retried(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _prereqs(backend, cfg)
    names = resource_names(cfg)
    lam_mod.ensure_validator.fn(backend, cfg, **p)
    lam = backend.client("lambda", REGION)
    lam.update_function_configuration(FunctionName=names.lambda_function, Timeout=3)
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    given = _answer(lam, "UpdateFunctionConfiguration", [CANNOT_ASSUME, NO_PUBLISH])
    fixed = lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert "timeout" in fixed["repaired"] and fixed["timeout"] == lam_mod.TIMEOUT_S
    assert len(given) == 2 and len(sleeps) == 2


def test_role_that_never_appears_fails_within_the_bound(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    with pytest.raises(NotConsistentError, match="waiting for IAM: Lambda to be able to assume the role") as info:
        lam_mod.ensure_validator.fn(
            backend, cfg, "arn:aws:iam::123456789012:role/nope", "arn:aws:sns:eu-west-1:1:t", key
        )
    assert "cannot be assumed" in str(info.value)
    assert sum(sleeps) == pytest.approx(lam_mod.LAMBDA_CONSISTENCY_BUDGET_S)
    assert backend.client("lambda", REGION).list_functions()["Functions"] == []


def test_other_invalid_parameters_are_not_retried(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _prereqs(backend, cfg)
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    _answer(backend.client("lambda", REGION), "CreateFunction", [("InvalidParameterValueException", "Bad handler")])
    with pytest.raises(ClientError, match="Bad handler"):
        lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert sleeps == []


def test_async_invocations_are_not_retried_by_lambda(backend: Backend, cfg: MigrationConfig) -> None:
    """Retries 0 (read back) so a crash or timeout reaches the dead-letter target once; repaired when removed."""
    p = _prereqs(backend, cfg)
    names = resource_names(cfg)
    out = lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert out["asyncInvoke"] == {"maximumRetryAttempts": 0, "maximumEventAgeSeconds": 60}
    assert "asynchronous invoke configuration read-back" not in out["notSupportedByBackend"]
    lam = backend.client("lambda", REGION)
    lam.delete_function_event_invoke_config(FunctionName=names.lambda_function)
    fixed = lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert fixed["repaired"] == ["asyncInvokeConfig"]
    assert fixed["asyncInvoke"] == {"maximumRetryAttempts": 0, "maximumEventAgeSeconds": 60}
    assert lam_mod.ensure_validator.fn(backend, cfg, **p)["repaired"] == []


def test_client_read_timeout_exceeds_the_function_timeout(backend: Backend) -> None:
    """The client must not give up on a call the function may still be running for."""
    assert backend.client("lambda", REGION).meta.config.read_timeout > lam_mod.TIMEOUT_S
    # The flow waits for an asynchronous run's result until the event has expired and the run has timed out.
    assert lam_mod.MAX_EVENT_AGE_S == 60 and lam_mod.EVENT_INVOKE_CONFIG["MaximumRetryAttempts"] == 0


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
        lam_mod.ensure_validator.fn(backend, cfg, **p)


def test_foreign_log_group_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    p = _prereqs(backend, cfg)
    backend.client("logs", REGION).create_log_group(logGroupName=resource_names(cfg).log_group)
    with pytest.raises(CollisionError, match="log group"):
        lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert backend.client("lambda", REGION).list_functions()["Functions"] == []


def test_a_kms_key_that_can_never_work_is_not_waited_for(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _prereqs(backend, cfg)
    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    alias = (
        "InvalidParameterValueException",
        "Lambda was unable to configure access to your environment variables because the KMS key is invalid for "
        "CreateGrant. Please check your KMS key settings. KMS Exception: InvalidArnException KMS Message: Key "
        "Aliases are not supported for this operation.",
    )
    _answer(backend.client("lambda", REGION), "CreateFunction", [alias])
    with pytest.raises(ClientError, match="Key Aliases are not supported"):
        lam_mod.ensure_validator.fn(backend, cfg, **p)
    assert sleeps == []
