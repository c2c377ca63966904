"""The validation Lambda in the target region: its log group, package, function and reserved concurrency.

The package is built deterministically (fixed timestamps and modes, sorted entries) so its CodeSha256 only
changes when the code does: a re-run compares hashes and leaves an unchanged function alone.
Everything returned is read back from Lambda and CloudWatch Logs. Where the backend does not return a
setting we wrote (moto omits DeadLetterConfig), the result says so instead of echoing our intent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, is_not_found
from tasks.errors import CollisionError
from tasks.names import ResourceNames, resource_names

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "lambda" / "validator"
# Repository modules the handler imports, shipped next to handler.py under these names (stdlib-only files,
# so the flow and the Lambda share the comparison code and the package stays a few KB).
SHARED_MODULES: dict[str, Path] = {"digest.py": Path(__file__).resolve().parents[1] / "validate" / "digest.py"}
RUNTIME = "python3.12"
HANDLER = "handler.handler"
MEMORY_MB = 256
TIMEOUT_S = 120
RESERVED_CONCURRENCY = 5
LOG_RETENTION_DAYS = 30
# A new role can take several seconds to become assumable by Lambda (IAM is eventually consistent):
# create_function then fails with InvalidParameterValueException. Back off and retry only that error.
ROLE_PROPAGATION_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 10, 10)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
NOT_RETURNED = "not returned by backend"


# ---------------------------------------------------------------- pure


def build_package(source: Path = PACKAGE_DIR, shared: Mapping[str, Path] | None = None) -> bytes:
    """Zip the validator's directory plus the shared modules byte-for-byte reproducibly (same files -> same
    bytes -> same hash). `shared` maps a name in the zip to a repository file (default SHARED_MODULES)."""
    shared = SHARED_MODULES if shared is None else shared
    files = {
        p.relative_to(source).as_posix(): p
        for p in source.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not p.name.startswith(".")
        and p.suffix not in {".pyc", ".pyo"}
    }
    clash = sorted(set(files) & set(shared))
    if clash:
        raise ValueError(f"{source} already holds {clash}: a shared module would silently replace it")
    files |= dict(shared)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr means the same everywhere
            info.external_attr = 0o100644 << 16
            zf.writestr(info, files[name].read_bytes(), compresslevel=9)
    return buf.getvalue()


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: base64 of the SHA-256 of the zip."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def function_environment(
    cfg: MigrationConfig, names: ResourceNames, topic_arn: str, kms_key_arn: str
) -> dict[str, str]:
    """What the handler reads when its event leaves something out (handler.settings): BUCKETS / TABLES
    name the targets for the configuration checks, BUCKET_PAIRS / TABLE_PAIRS ("src=dst,...", sorted by
    source) the pairs for the quick data checks."""
    return {
        "TARGET_REGION": cfg.targetRegion,
        "SOURCE_REGION": cfg.sourceRegion,
        "TOPIC_ARN": topic_arn,
        "KMS_KEY_ARN": kms_key_arn,
        "BUCKETS": ",".join(sorted(names.buckets.values())),
        "TABLES": ",".join(sorted(names.tables.values())),
        "BUCKET_PAIRS": pairs_text(names.buckets),
        "TABLE_PAIRS": pairs_text(names.tables),
    }


def pairs_text(pairs: Mapping[str, str]) -> str:
    """source -> target as "src=dst,src2=dst2" (the handler's parse_pairs reads it back)."""
    return ",".join(f"{source}={pairs[source]}" for source in sorted(pairs))


def desired_configuration(
    cfg: MigrationConfig, names: ResourceNames, role_arn: str, topic_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """The update_function_configuration kwargs (create_function adds code, tags and packaging)."""
    return {
        "FunctionName": names.lambda_function,
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "MemorySize": MEMORY_MB,
        "Timeout": TIMEOUT_S,
        "Description": f"Validates the region migration {cfg.migrationBatch} ({cfg.environmentSuffix})",
        "Environment": {"Variables": function_environment(cfg, names, topic_arn, kms_key_arn)},
        "KMSKeyArn": kms_key_arn,
        "DeadLetterConfig": {"TargetArn": topic_arn},
    }


def configuration_drift(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """Names of settings whose read-back differs from what we want (a missing DeadLetterConfig counts)."""
    drift: list[str] = []
    for key, field in (
        ("Role", "role"),
        ("Handler", "handler"),
        ("Runtime", "runtime"),
        ("MemorySize", "memorySize"),
        ("Timeout", "timeout"),
        ("Description", "description"),
        ("KMSKeyArn", "kmsKeyArn"),
    ):
        if current.get(key) != desired[key]:
            drift.append(field)
    if (current.get("Environment") or {}).get("Variables") != desired["Environment"]["Variables"]:
        drift.append("environment")
    if (current.get("DeadLetterConfig") or {}).get("TargetArn") != desired["DeadLetterConfig"]["TargetArn"]:
        drift.append("deadLetterTarget")
    return drift


# ---------------------------------------------------------------- AWS


def ensure_log_group(backend: Backend, cfg: MigrationConfig, name: str, kms_key_arn: str) -> dict[str, Any]:
    """The function's log group, created by us first (so retention and the CMK apply from line one)."""
    logs = backend.client("logs", cfg.targetRegion)
    created = False
    repaired: list[str] = []
    group = _describe_log_group(logs, name)
    if group is None:
        logs.create_log_group(logGroupName=name, kmsKeyId=kms_key_arn, tags=cfg.tags())
        created = True
        group = _describe_log_group(logs, name) or {}
    else:
        tags = logs.list_tags_for_resource(resourceArn=_group_arn(group)).get("tags", {})
        if not cfg.owns(tags):
            raise CollisionError(
                f"log group {name!r} already exists in {cfg.targetRegion} and is not tagged as part of "
                f"migration batch {cfg.migrationBatch!r} ({cfg.environmentSuffix}); delete it or change timestamp"
            )
        if any(tags.get(k) != v for k, v in cfg.tags().items()):
            logs.tag_resource(resourceArn=_group_arn(group), tags=cfg.tags())
            repaired.append("tags")
        if group.get("kmsKeyId") != kms_key_arn:
            logs.associate_kms_key(logGroupName=name, kmsKeyId=kms_key_arn)
            repaired.append("kmsKeyId")
    if group.get("retentionInDays") != LOG_RETENTION_DAYS:
        logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        if not created:
            repaired.append("retentionDays")
    group = _describe_log_group(logs, name) or {}
    return {
        "name": group.get("logGroupName"),
        "arn": _group_arn(group) if group else None,
        "retentionDays": group.get("retentionInDays"),
        "kmsKeyId": group.get("kmsKeyId"),
        "created": created,
        "repaired": repaired,
    }


def _describe_log_group(logs: Any, name: str) -> dict[str, Any] | None:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page.get("logGroups", []):
            if group.get("logGroupName") == name:
                return dict(group)
    return None


def _group_arn(group: dict[str, Any]) -> str:
    arn = str(group.get("logGroupArn") or group.get("arn") or "")
    return arn.removesuffix(":*")


def _create_function(lam: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """create_function, retrying only the 'role cannot be assumed yet' error while IAM propagates."""
    for delay in (*ROLE_PROPAGATION_DELAYS, None):
        try:
            return dict(lam.create_function(**kwargs))
        except Exception as err:
            propagating = error_code(err) == "InvalidParameterValueException" and "assumed" in str(err)
            if not propagating or delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _wait_updated(lam: Any, name: str) -> None:
    # A function accepts one change at a time: wait until the previous one has settled.
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def ensure_validator(
    backend: Backend, cfg: MigrationConfig, role_arn: str, topic_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """Create or repair the validation function (code, configuration, tags, concurrency); read it back."""
    names = resource_names(cfg)
    name = names.lambda_function
    lam = backend.client("lambda", cfg.targetRegion)
    log_group = ensure_log_group(backend, cfg, names.log_group, kms_key_arn)
    package = build_package()
    sha = code_sha256(package)
    desired = desired_configuration(cfg, names, role_arn, topic_arn, kms_key_arn)
    created = False
    repaired = [f"logGroup.{r}" for r in log_group["repaired"]]
    try:
        current = lam.get_function(FunctionName=name)
    except Exception as err:
        if not is_not_found(err):
            raise
        current = None
    if current is None:
        _create_function(
            lam,
            desired | {"Code": {"ZipFile": package}, "PackageType": "Zip", "Publish": False, "Tags": cfg.tags()},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        created = True
    else:
        conf = current["Configuration"]
        tags = dict(current.get("Tags") or {})
        if not cfg.owns(tags):
            raise CollisionError(
                f"Lambda function {name!r} already exists in {cfg.targetRegion} and is not tagged as part of "
                f"migration batch {cfg.migrationBatch!r} ({cfg.environmentSuffix}); delete it or change timestamp"
            )
        if any(tags.get(k) != v for k, v in cfg.tags().items()):
            lam.tag_resource(Resource=conf["FunctionArn"], Tags=cfg.tags())
            repaired.append("tags")
        if conf.get("CodeSha256") != sha:
            _wait_updated(lam, name)
            lam.update_function_code(FunctionName=name, ZipFile=package, Publish=False)
            repaired.append("code")
        drift = configuration_drift(conf, desired)
        if drift:
            _wait_updated(lam, name)
            lam.update_function_configuration(**desired)
            _wait_updated(lam, name)
            after = lam.get_function_configuration(FunctionName=name)
            # Only count what the backend confirms: a DeadLetterConfig that is still not returned after we
            # wrote it is reported as unmeasured below, not as repaired.
            still = set(configuration_drift(after, desired))
            repaired += [d for d in drift if d not in still]
    concurrency_problem = None
    reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    if reserved != RESERVED_CONCURRENCY:
        try:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=RESERVED_CONCURRENCY)
            if not created:
                repaired.append("reservedConcurrency")
        except Exception as err:
            # Accounts with a low concurrency quota refuse any reservation that leaves <10 unreserved.
            if error_code(err) != "InvalidParameterValueException":
                raise
            concurrency_problem = str(err)
    result = read_validator(backend, cfg, sha) | {"created": created, "repaired": repaired}
    result["logGroup"] = {k: log_group[k] for k in ("name", "arn", "retentionDays", "kmsKeyId")}
    if concurrency_problem:
        result["reservedConcurrencyProblem"] = concurrency_problem
    return result


def read_validator(backend: Backend, cfg: MigrationConfig, expected_sha: str | None = None) -> dict[str, Any]:
    """The function as Lambda reports it, plus its reserved concurrency and log group."""
    names = resource_names(cfg)
    lam = backend.client("lambda", cfg.targetRegion)
    fn = lam.get_function(FunctionName=names.lambda_function)
    conf = fn["Configuration"]
    dlq = (conf.get("DeadLetterConfig") or {}).get("TargetArn")
    reserved = lam.get_function_concurrency(FunctionName=names.lambda_function).get("ReservedConcurrentExecutions")
    group = _describe_log_group(backend.client("logs", cfg.targetRegion), names.log_group) or {}
    out: dict[str, Any] = {
        "name": conf["FunctionName"],
        "arn": conf["FunctionArn"],
        "runtime": conf.get("Runtime"),
        "handler": conf.get("Handler"),
        "role": conf.get("Role"),
        "memorySize": conf.get("MemorySize"),
        "timeout": conf.get("Timeout"),
        "reservedConcurrency": reserved,
        "deadLetterTarget": dlq,
        "deadLetterTargetMeasured": "read back" if dlq else NOT_RETURNED,
        "kmsKeyArn": conf.get("KMSKeyArn"),
        "environmentKeys": sorted((conf.get("Environment") or {}).get("Variables", {})),
        "state": conf.get("State"),
        "codeSha256": conf.get("CodeSha256"),
        "codeMatchesPackage": (conf.get("CodeSha256") == expected_sha) if expected_sha else None,
        "tags": dict(fn.get("Tags") or {}),
        "logGroup": {
            "name": group.get("logGroupName"),
            "arn": _group_arn(group) if group else None,
            "retentionDays": group.get("retentionInDays"),
            "kmsKeyId": group.get("kmsKeyId"),
        },
        "notSupportedByBackend": [] if dlq else ["DeadLetterConfig read-back"],
    }
    return out
