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
import zipfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, is_not_found
from tasks.consistency import Lag, retry_until_consistent
from tasks.errors import CollisionError
from tasks.names import ResourceNames, resource_names
from tasks.provision.common import claim, delete_measured, lookup
from tasks.steps import step
from tasks.validate.validator_input import pairs_text

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "lambda" / "validator"
# Repository modules the handler imports, shipped next to handler.py under these names (stdlib-only files,
# so the flow and the Lambda share the comparison code and the package stays a few KB).
SHARED_MODULES: dict[str, Path] = {
    name: Path(__file__).resolve().parents[1] / "validate" / name for name in ("digest.py", "validator_input.py")
}
RUNTIME = "python3.12"
HANDLER = "handler.handler"
MEMORY_MB = 256
# The handler's quick checks are a few describe calls per resource, one listing request per 1,000 keys and a
# keys-only scan per table side: seconds for the demo data. 60 s stays well under the clients' 120 s read
# timeout (tasks/aws.py) and bounds how long the flow waits for the asynchronous run's result.
TIMEOUT_S = 60
RESERVED_CONCURRENCY = 5
LOG_RETENTION_DAYS = 30
# Asynchronous invocations only (the dead-letter target receives only those). No retries by Lambda: a run is
# not idempotent (it publishes alerts) and a failed one must reach the DLQ once. An event not started within
# MAX_EVENT_AGE_S (the API's minimum, 60) is discarded to the DLQ too ("When an event fails all processing
# attempts or stays in the asynchronous invocation queue for too long, Lambda discards it. To retain discarded
# events, configure a dead-letter queue", PutFunctionEventInvokeConfig), so a run's outcome is known after
# MAX_EVENT_AGE_S + TIMEOUT_S.
EVENT_INVOKE_CONFIG: dict[str, int] = {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
MAX_EVENT_AGE_S = EVENT_INVOKE_CONFIG["MaximumEventAgeInSeconds"]
# IAM, and KMS grants through it, are eventually consistent: right after the role (or its policy) was written,
# CreateFunction / UpdateFunctionConfiguration answer InvalidParameterValueException with these messages for
# seconds (AWS documents no bound; minutes is generous).
LAMBDA_LAGS: tuple[Lag, ...] = (
    Lag("InvalidParameterValueException", "cannot be assumed by Lambda", "IAM: Lambda to be able to assume the role"),
    Lag(
        "InvalidParameterValueException",
        "does not have permissions to call Publish on SNS",
        "IAM: the role's sns:Publish on the dead-letter topic",
    ),
    Lag(
        "InvalidParameterValueException",
        "because the KMS key is invalid for CreateGrant",
        "KMS: the key to accept Lambda's grant for the environment variables",
        # The same answer for a key that can never work (an alias ARN, a deleted or foreign key): not a lag.
        unless=("InvalidArnException", "NotFoundException", "KMSInvalidStateException", "DisabledException"),
    ),
)
LAMBDA_CONSISTENCY_BUDGET_S = 300.0
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
        "TARGET_REGION": cfg.target_region,
        "SOURCE_REGION": cfg.source_region,
        "TOPIC_ARN": topic_arn,
        "KMS_KEY_ARN": kms_key_arn,
        "BUCKETS": ",".join(sorted(names.buckets.values())),
        "TABLES": ",".join(sorted(names.tables.values())),
        "BUCKET_PAIRS": pairs_text(names.buckets),
        "TABLE_PAIRS": pairs_text(names.tables),
        "RESULT_TABLE": names.checkpoint_table,
    }


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
        "Description": f"Validates the region migration {cfg.migration_batch} ({cfg.environment_suffix})",
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
    logs = backend.client("logs", cfg.target_region)
    created = False
    repaired: list[str] = []
    group = describe_log_group(logs, name)
    if group is None:
        logs.create_log_group(logGroupName=name, kmsKeyId=kms_key_arn, tags=cfg.tags())
        created = True
        group = describe_log_group(logs, name) or {}
    else:
        tags = log_group_tags(logs, group)
        claim(cfg, tags, f"log group {name!r} already exists in {cfg.target_region}", "delete it or change timestamp")
        if any(tags.get(k) != v for k, v in cfg.tags().items()):
            logs.tag_resource(resourceArn=group_arn(group), tags=cfg.tags())
            repaired.append("tags")
        if group.get("kmsKeyId") != kms_key_arn:
            logs.associate_kms_key(logGroupName=name, kmsKeyId=kms_key_arn)
            repaired.append("kmsKeyId")
    if group.get("retentionInDays") != LOG_RETENTION_DAYS:
        logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        if not created:
            repaired.append("retentionDays")
    group = describe_log_group(logs, name) or {}
    return {
        "name": group.get("logGroupName"),
        "arn": group_arn(group) if group else None,
        "retentionDays": group.get("retentionInDays"),
        "kmsKeyId": group.get("kmsKeyId"),
        "created": created,
        "repaired": repaired,
    }


def describe_log_group(logs: Any, name: str) -> dict[str, Any] | None:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page.get("logGroups", []):
            if group.get("logGroupName") == name:
                return dict(group)
    return None


def group_arn(group: dict[str, Any]) -> str:
    arn = str(group.get("logGroupArn") or group.get("arn") or "")
    return arn.removesuffix(":*")


def _until_consistent(call: Callable[..., Any], kwargs: dict[str, Any], verb: str) -> dict[str, Any]:
    """create_function / update_function_configuration, retrying only the answers that mean IAM or KMS have
    not caught up with a new or repaired role, dead-letter target or key (LAMBDA_LAGS)."""
    return dict(
        retry_until_consistent(
            lambda: call(**kwargs),
            LAMBDA_LAGS,
            what=f"{verb} Lambda function {kwargs['FunctionName']}",
            budget_s=LAMBDA_CONSISTENCY_BUDGET_S,
        )
    )


def ensure_event_invoke_config(lam: Any, name: str) -> tuple[dict[str, Any] | None, bool]:
    """Lambda's asynchronous-invocation settings: no retries, short event age (idempotent). Returns the
    settings read back (None when the backend keeps none) and whether we wrote them."""
    current = _event_invoke_config(lam, name)
    if current is not None and all(current.get(k) == v for k, v in EVENT_INVOKE_CONFIG.items()):
        return current, False
    # PutFunctionEventInvokeConfig overwrites the whole configuration (we use no destinations). Let a code or
    # configuration update in progress settle first.
    _wait_updated(lam, name)
    lam.put_function_event_invoke_config(FunctionName=name, **EVENT_INVOKE_CONFIG)
    return _event_invoke_config(lam, name), True


def _event_invoke_config(lam: Any, name: str) -> dict[str, Any] | None:
    try:
        got = lam.get_function_event_invoke_config(FunctionName=name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    return {k: got.get(k) for k in EVENT_INVOKE_CONFIG}


def _wait_updated(lam: Any, name: str) -> None:
    # A function accepts one change at a time: wait until the previous one has settled.
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


@step("provision-validator")
def ensure_validator(
    backend: Backend, cfg: MigrationConfig, role_arn: str, topic_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """Create or repair the validation function (code, configuration, tags, concurrency); read it back."""
    names = resource_names(cfg)
    name = names.lambda_function
    lam = backend.client("lambda", cfg.target_region)
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
        _until_consistent(
            lam.create_function,
            desired | {"Code": {"ZipFile": package}, "PackageType": "Zip", "Publish": False, "Tags": cfg.tags()},
            "create",
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        created = True
    else:
        conf = current["Configuration"]
        tags = dict(current.get("Tags") or {})
        if not cfg.owns(tags):
            raise CollisionError(
                f"Lambda function {name!r} already exists in {cfg.target_region} and is not tagged as part of "
                f"migration batch {cfg.migration_batch!r} ({cfg.environment_suffix}); delete it or change timestamp"
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
            _until_consistent(lam.update_function_configuration, desired, "update")
            _wait_updated(lam, name)
            after = lam.get_function_configuration(FunctionName=name)
            # Only count what the backend confirms: a DeadLetterConfig that is still not returned after we
            # wrote it is reported as unmeasured below, not as repaired.
            still = set(configuration_drift(after, desired))
            repaired += [d for d in drift if d not in still]
    _, wrote_async = ensure_event_invoke_config(lam, name)
    if wrote_async and not created:
        repaired.append("asyncInvokeConfig")
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
    lam = backend.client("lambda", cfg.target_region)
    fn = lam.get_function(FunctionName=names.lambda_function)
    conf = fn["Configuration"]
    dlq = (conf.get("DeadLetterConfig") or {}).get("TargetArn")
    reserved = lam.get_function_concurrency(FunctionName=names.lambda_function).get("ReservedConcurrentExecutions")
    group = describe_log_group(backend.client("logs", cfg.target_region), names.log_group) or {}
    async_config = _event_invoke_config(lam, names.lambda_function)
    async_ok = async_config is not None and all(async_config.get(k) == v for k, v in EVENT_INVOKE_CONFIG.items())
    unsupported = [] if dlq else ["DeadLetterConfig read-back"]
    if not async_ok:
        unsupported.append("asynchronous invoke configuration read-back")
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
            "arn": group_arn(group) if group else None,
            "retentionDays": group.get("retentionInDays"),
            "kmsKeyId": group.get("kmsKeyId"),
        },
        # Read back: retries 0 is what lets a crash or timeout reach the dead-letter target exactly once.
        "asyncInvoke": {
            "maximumRetryAttempts": (async_config or {}).get("MaximumRetryAttempts"),
            "maximumEventAgeSeconds": (async_config or {}).get("MaximumEventAgeInSeconds"),
        },
        "notSupportedByBackend": unsupported,
    }
    return out


def log_group_tags(logs: Any, group: dict[str, Any]) -> dict[str, str]:
    return dict(logs.list_tags_for_resource(resourceArn=group_arn(group)).get("tags", {}))


def function_tags(lam: Any, fn: dict[str, Any]) -> dict[str, str]:
    """A GetFunction response's tags; ListTags when the backend leaves them out of it."""
    tags = dict(fn.get("Tags") or {})
    return tags or dict(lam.list_tags(Resource=fn["Configuration"]["FunctionArn"]).get("Tags") or {})


# ---------------------------------------------------------------- find / delete (teardown, preflight)


def find_function(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any] | None:
    """The function with our name, and whether its tags say it is ours (None: no such function)."""
    lam = backend.client("lambda", cfg.target_region)
    fn = lookup(lam.get_function, FunctionName=name)
    if fn is None:
        return None
    arn = fn["Configuration"]["FunctionArn"]
    return {"name": name, "arn": arn, "region": cfg.target_region, "owned": cfg.owns(function_tags(lam, fn))}


def find_log_group(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any] | None:
    """The log group with our name, and whether its tags say it is ours (None: no such group)."""
    logs = backend.client("logs", cfg.target_region)
    group = describe_log_group(logs, name)
    if group is None:
        return None
    return {
        "name": name,
        "arn": group_arn(group),
        "region": cfg.target_region,
        "owned": cfg.owns(log_group_tags(logs, group)),
    }


def delete_function(backend: Backend, region: str, name: str) -> dict[str, Any]:
    lam = backend.client("lambda", region)
    return delete_measured(
        partial(lam.delete_function, FunctionName=name), partial(lookup, lam.get_function, FunctionName=name)
    )


def delete_log_group(backend: Backend, region: str, name: str) -> dict[str, Any]:
    logs = backend.client("logs", region)
    return delete_measured(partial(logs.delete_log_group, logGroupName=name), partial(describe_log_group, logs, name))
