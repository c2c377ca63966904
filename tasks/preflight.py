"""Preflight and plan: everything checked before anything is created, and what a run would do.

`check` is cheap (a handful of describe calls) so the CLI can run it before starting Prefect and
refuse bad input in a second; `plan` also counts what there is to move (a parallel listing, and CloudWatch's
daily object count as a first estimate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    UnknownServiceError,
)

from config.model import MigrationConfig
from config.prices import PriceTable, load_prices
from config.settings import SETTINGS
from tasks import plan_count, plan_estimate
from tasks.aws import Backend, bucket_region, error_code, is_not_found
from tasks.move.dynamodb_import import imported_table_arn
from tasks.names import resource_names, staging_bucket
from tasks.provision import dynamodb, iam, kms, lambda_, s3, sns
from tasks.steps import step


@dataclass
class Preflight:
    """What preflight measured; `errors` non-empty means: stop, nothing was created."""

    account_id: str = ""
    backend: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_credentials(backend: Backend, region: str) -> None:
    """Fail fast, in one line, on missing or rejected credentials or an unreachable endpoint (teardown's CLI)."""
    from tasks.errors import UserError

    try:
        backend.client("sts", region, max_attempts=2).get_caller_identity()
    except (BotoCoreError, ClientError) as err:
        raise UserError(credentials_error(err, backend)) from None


def credentials_error(err: Exception, backend: Backend) -> str:
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass --profile"
    if isinstance(err, ProfileNotFound):
        return f"AWS profile {backend.profile!r} not found; check --profile against ~/.aws/config"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach {backend.endpoint_url or 'AWS'}; check --endpoint-url and that the service is running"
    code = error_code(err)
    if code:
        return f"AWS rejected the credentials ({code}); refresh them or pick another --profile"
    return f"cannot check credentials: {err}"


@step("preflight", retries=1)
def check(backend: Backend, cfg: MigrationConfig) -> Preflight:
    """Credentials, sources exist in the source region, target names free or ours. Creates nothing."""
    pf = Preflight(backend=backend.describe())
    try:
        pf.account_id = backend.account_id(cfg.source_region, max_attempts=2)
    except (BotoCoreError, ClientError) as err:
        pf.errors.append(credentials_error(err, backend))
        return pf
    _check_buckets(backend, cfg, pf)
    _check_tables(backend, cfg, pf)
    _check_other_targets(backend, cfg, pf)
    return pf


def _check_buckets(backend: Backend, cfg: MigrationConfig, pf: Preflight) -> None:
    src = backend.client("s3", cfg.source_region)
    for i, spec in enumerate(cfg.s3_buckets):
        where = f"s3Buckets[{i}] ({spec.name})"
        try:
            loc = bucket_region(src.get_bucket_location(Bucket=spec.name).get("LocationConstraint"))
        except ClientError as err:
            if is_not_found(err):
                pf.errors.append(f"{where}: source bucket does not exist; check the name or sourceRegion")
            else:
                pf.errors.append(f"{where}: cannot read the source bucket ({error_code(err)}); check permissions")
            continue
        if loc != cfg.source_region:
            pf.errors.append(
                f"{where}: source bucket is in {loc}, not sourceRegion {cfg.source_region}; fix sourceRegion"
            )
            continue
        versioning = src.get_bucket_versioning(Bucket=spec.name).get("Status", "Disabled")
        pf.buckets.append({"name": spec.name, "region": loc, "versioning": versioning})
        _check_target_bucket(backend, cfg, pf, where, cfg.target_name(spec.name))


def _check_target_bucket(backend: Backend, cfg: MigrationConfig, pf: Preflight, where: str, target: str) -> None:
    dst = backend.client("s3", cfg.target_region)
    state = s3.head(dst, target)
    if state == "absent":
        pf.targets.append({"type": "s3 bucket", "name": target, "state": "absent"})
        return
    if state == "forbidden":
        pf.errors.append(
            f"{where}: target bucket name {target!r} is taken by another account; change timestamp or environmentSuffix"
        )
        return
    if cfg.owns(s3.bucket_tags(dst, target)):
        pf.targets.append({"type": "s3 bucket", "name": target, "state": "ours"})
    else:
        pf.errors.append(
            f"{where}: target bucket {target!r} already exists and was not created by this migration; "
            "change timestamp or environmentSuffix, or remove it"
        )


def _check_tables(backend: Backend, cfg: MigrationConfig, pf: Preflight) -> None:
    src = backend.client("dynamodb", cfg.source_region)
    for i, spec in enumerate(cfg.dynamodb_tables):
        where = f"dynamodbTables[{i}] ({spec.name})"
        try:
            desc = src.describe_table(TableName=spec.name)["Table"]
        except ClientError as err:
            if is_not_found(err):
                pf.errors.append(
                    f"{where}: source table does not exist in {cfg.source_region}; check the name or sourceRegion"
                )
            else:
                pf.errors.append(f"{where}: cannot describe the source table ({error_code(err)}); check permissions")
            continue
        problem = dynamodb.check_spec_against_source(spec, desc, i)
        if problem:
            pf.errors.append(problem)
            continue
        stream = desc.get("StreamSpecification") or {}
        if stream.get("StreamEnabled") and stream.get("StreamViewType") not in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
            pf.errors.append(
                f"{where}: the source stream is {stream.get('StreamViewType')}, which lacks item images; "
                "switch it to NEW_AND_OLD_IMAGES"
            )
        entry: dict[str, Any] = {
            "name": spec.name,
            "items": int(desc.get("ItemCount", 0)),
            "bytes": int(desc.get("TableSizeBytes", 0)),
            "billingMode": desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
            "streamEnabled": bool(stream.get("StreamEnabled")),
        }
        if stream.get("StreamEnabled") and desc.get("LatestStreamArn"):
            consumers = stream_consumers(backend, cfg.source_region, desc["LatestStreamArn"])
            entry["streamConsumers"] = consumers
            warning = consumers_warning(where, consumers)
            if warning:
                pf.warnings.append(warning)
        pf.tables.append(entry)
        target = cfg.target_name(spec.name)
        found = dynamodb.find_table(backend, cfg, target, with_data=False)
        if found is None:
            pf.targets.append({"type": "dynamodb table", "name": target, "state": "absent"})
            continue
        if found["owned"]:
            pf.targets.append({"type": "dynamodb table", "name": target, "state": "ours"})
        elif found["arn"] == imported_table_arn(backend, cfg, spec.name, resource_names(cfg).checkpoint_table):
            # ImportTable cannot tag: a run that crashed before tagging left it, and recorded its ImportArn.
            pf.targets.append({"type": "dynamodb table", "name": target, "state": "ours (imported, not tagged yet)"})
        else:
            pf.errors.append(
                f"{where}: target table {target!r} already exists in {cfg.target_region} and was not "
                "created by this migration; change timestamp or environmentSuffix, or remove it"
            )


# Error codes of a backend that does not implement an API. Not a bare 500: on AWS that is a transient
# InternalFailure, so the stream's readers were not checked (a warning), not "not supported".
_UNSUPPORTED = {
    "NotImplemented",
    "NotImplementedException",
    "501",
    "UnknownOperationException",
    "InvalidAction",
    "UnsupportedOperation",
}
_INACTIVE_MAPPING = {"Disabled", "Disabling", "Deleting"}
_INACTIVE_PIPE = {"STOPPED", "STOPPING", "DELETING", "CREATE_FAILED", "START_FAILED", "STOP_FAILED"}


def stream_consumers(backend: Backend, region: str, stream_arn: str) -> dict[str, Any]:
    """Who else reads the source table's stream, as far as this account can see: Lambda event source
    mappings and EventBridge Pipes on the stream ARN. A lister a backend lacks is reported, not fatal.

    DynamoDB Streams: "More than 2 processes are reading from the same streams shard at the same time.
    Exceeding this limit may result in request throttling." (LimitExceededException); our catch-up is one more.
    """
    out: dict[str, Any] = {"lambdaEventSourceMappings": [], "pipes": [], "notSupportedByBackend": [], "unchecked": []}
    try:
        lam = backend.client("lambda", region)
        for page in lam.get_paginator("list_event_source_mappings").paginate(EventSourceArn=stream_arn):
            for m in page.get("EventSourceMappings", []):
                out["lambdaEventSourceMappings"].append(
                    {"uuid": m.get("UUID"), "function": m.get("FunctionArn"), "state": m.get("State")}
                )
    except ClientError as err:
        _unchecked(out, "lambda event source mappings", err)
    try:
        pipes = backend.client("pipes", region)
        for page in pipes.get_paginator("list_pipes").paginate(SourcePrefix=stream_arn):
            for p in page.get("Pipes", []):
                if p.get("Source") == stream_arn:
                    out["pipes"].append({"name": p.get("Name"), "arn": p.get("Arn"), "state": p.get("CurrentState")})
    except UnknownServiceError:
        out["notSupportedByBackend"].append("pipes: the installed botocore has no EventBridge Pipes client")
    except ClientError as err:
        _unchecked(out, "pipes", err)
    return out


def _unchecked(out: dict[str, Any], what: str, err: ClientError) -> None:
    code = error_code(err)
    key = "notSupportedByBackend" if code in _UNSUPPORTED else "unchecked"
    out[key].append(f"{what}: {code or type(err).__name__}")


def consumers_warning(where: str, consumers: dict[str, Any]) -> str | None:
    """One line when the stream already has active readers we can see (or we could not look)."""
    active = [
        f"Lambda event source mapping {m['uuid']} ({m['function']})"
        for m in consumers["lambdaEventSourceMappings"]
        if m.get("state") not in _INACTIVE_MAPPING
    ] + [f"pipe {p['name']}" for p in consumers["pipes"] if p.get("state") not in _INACTIVE_PIPE]
    if active:
        readers = len(active) + 1
        effect = (
            "over the limit: expect throttled GetRecords for them and for the catch-up"
            if readers > 2
            else "at the limit: a further reader would be throttled"
        )
        return (
            f"{where}: the source stream already has {len(active)} reader(s) ({', '.join(active)}); a shard serves "
            f"at most two readers at once and the migration's stream catch-up makes {readers}: {effect}"
        )
    if consumers["unchecked"]:
        return f"{where}: could not list the source stream's consumers ({'; '.join(consumers['unchecked'])})"
    return None


def _check_other_targets(backend: Backend, cfg: MigrationConfig, pf: Preflight) -> None:
    """KMS alias, SNS topic, Lambda function and IAM roles: free, or already ours."""
    names = resource_names(cfg)
    region = cfg.target_region
    keys = backend.client("kms", region)
    key_id = kms.alias_target(keys, names.kms_alias)
    if key_id:
        _own(pf, cfg, "kms alias", names.kms_alias, cfg.owns(kms.key_tags(keys, key_id)))
    else:
        pf.targets.append({"type": "kms key", "name": names.kms_alias, "state": "absent"})
    for kind, name, found in (
        ("sns topic", names.topic, sns.find_topic(backend, cfg, region, names.topic, pf.account_id)),
        ("lambda function", names.lambda_function, lambda_.find_function(backend, cfg, names.lambda_function)),
        *(("iam role", r, iam.find_role(backend, cfg, r)) for r in (names.replication_role, names.lambda_role)),
        *(
            [("s3 bucket (staging)", staging, s3.find_bucket(backend, cfg, "", staging))]
            if cfg.dynamodb_tables and (staging := staging_bucket(cfg))
            else []
        ),
    ):
        if found is None:
            pf.targets.append({"type": kind, "name": name, "state": "absent"})
        else:
            _own(pf, cfg, kind, name, found["owned"])


def _own(pf: Preflight, cfg: MigrationConfig, kind: str, name: str, owned: bool) -> None:
    if owned:
        pf.targets.append({"type": kind, "name": name, "state": "ours"})
    else:
        pf.errors.append(
            f"{kind} {name!r} already exists in {cfg.target_region} and was not created by this "
            "migration; change timestamp or environmentSuffix, or remove it"
        )


def plan(
    backend: Backend,
    cfg: MigrationConfig,
    pf: Preflight | None = None,
    *,
    prices: PriceTable | None = None,
    s3_batch_min_objects: int | None = SETTINGS.s3_batch_min_objects,
    dynamodb_import_min_bytes: int | None = SETTINGS.dynamodb_import_min_bytes,
    blocked: dict[str, str] | None = None,
    plan_list_max_objects: int | None = SETTINGS.plan_list_max_objects,
) -> dict[str, Any]:
    """What a run would create or change, resource by resource (as it is now: read back), how much data there is
    to move, and what each store's path will cost and take (`blocked`: store -> why its server-side path cannot
    serve it here, from a capability probe; a bucket CloudWatch counts above `plan_list_max_objects` is not listed:
    tasks/plan_count.py)."""
    pf = pf or check.fn(backend, cfg)
    prices = prices or load_prices()
    blocked = blocked or {}
    names = resource_names(cfg)
    state = {(t["type"], t["name"]): t["state"] for t in pf.targets}

    def action(kind: str, name: str) -> str:
        return "exists (ours, will be checked for drift)" if state.get((kind, name)) == "ours" else "create"

    steps: list[dict[str, str]] = [
        {"resource": "kms key", "name": names.kms_alias, "action": action("kms alias", names.kms_alias)},
        {"resource": "sns topic", "name": names.topic, "action": action("sns topic", names.topic)},
        {
            "resource": "dynamodb table (checkpoints)",
            "name": names.checkpoint_table,
            "action": plan_estimate.checkpoint_action(backend, cfg),
        },
        {"resource": "iam role", "name": names.replication_role, "action": action("iam role", names.replication_role)},
        {"resource": "iam role", "name": names.lambda_role, "action": action("iam role", names.lambda_role)},
        {
            "resource": "lambda function",
            "name": names.lambda_function,
            "action": action("lambda function", names.lambda_function),
        },
        {"resource": "cloudwatch alarms + dashboard", "name": names.dashboard, "action": "create or update"},
    ]
    if cfg.dynamodb_tables:  # validation stages its rows there (and an export/import its export)
        staging, kind = staging_bucket(cfg), "s3 bucket (staging)"
        steps.append({"resource": kind, "name": staging, "action": action(kind, staging)})
    buckets = []
    unsupported: dict[str, str] = {}
    for b in pf.buckets:
        target = names.buckets[b["name"]]
        steps.append({"resource": "s3 bucket", "name": target, "action": action("s3 bucket", target)})
        if b["versioning"] != "Enabled":
            steps.append({"resource": "source s3 bucket", "name": b["name"], "action": "enable versioning"})
        rule = plan_estimate.replication_action(backend, cfg, b["name"], target)
        steps.append({"resource": "source s3 bucket", "name": b["name"], "action": rule})
        counted, estimate, refused = plan_count.bucket_counts(
            backend, cfg.source_region, b["name"], plan_list_max_objects
        )
        unsupported.update(refused)
        row = {**b, "target": target, **counted, "estimate": estimate}
        row["cost"] = plan_estimate.bucket_estimate(prices, row, s3_batch_min_objects, blocked.get(b["name"]))
        buckets.append(row)
    tables = []
    for t in pf.tables:
        target = names.tables[t["name"]]
        steps.append({"resource": "dynamodb table", "name": target, "action": action("dynamodb table", target)})
        if not t["streamEnabled"]:
            steps.append(
                {"resource": "source dynamodb table", "name": t["name"], "action": "enable stream NEW_AND_OLD_IMAGES"}
            )
        cost = plan_estimate.table_estimate(backend, cfg, prices, t["name"], dynamodb_import_min_bytes)
        tables.append({**t, "target": target, "cost": cost})
    return {
        "backend": pf.backend,
        "account": pf.account_id,
        "sourceRegion": cfg.source_region,
        "targetRegion": cfg.target_region,
        "errors": pf.errors,
        "steps": steps,
        "buckets": buckets,
        "tables": tables,
        "totals": {
            "objects": sum(b["objects"] for b in buckets),
            "bytes": sum(b["bytes"] for b in buckets),
            "items": sum(t["cost"]["items"] for t in tables),  # sampled where DescribeTable reports 0
            "itemBytes": sum(t["cost"]["bytes"] for t in tables),
        },
        "notSupportedByBackend": unsupported,
        "cost": plan_estimate.plan_total(prices, [b["cost"] for b in buckets] + [t["cost"] for t in tables]),
    }


def format_plan(p: dict[str, Any]) -> str:
    """The plan as text for a terminal."""
    lines = [f"Plan: {p['sourceRegion']} -> {p['targetRegion']} on {p['backend']} (account {p['account']})", ""]
    width = max((len(s["resource"]) for s in p["steps"]), default=10)
    for s in p["steps"]:
        lines.append(f"  {s['resource']:<{width}}  {s['name']}: {s['action']}")
    lines.append("")
    for b in p["buckets"]:
        est = b.get("estimate") or {}
        first = f"{est['objects']} objects" if est.get("objects") is not None else "objects"
        if not plan_count.listed(b):
            lines.append(
                f"  s3 {b['name']} -> {b['target']}: ~{b['objects']} objects, ~{_size(b['bytes'])} "
                f"(not listed: {b['notListed']}; objects: {b['counted']}; bytes: {b['bytesFrom']})"
            )
            lines.append(f"    objects without a checksum {plan_count.NOT_COUNTED}: full validation's GETs not priced")
        else:
            lines.append(
                f"  s3 {b['name']} -> {b['target']}: {b['objects']} objects, {_size(b['bytes'])} "
                f"({b.get('counted', plan_count.LISTED)}; first estimate: {first}, {est.get('source', 'not asked')})"
            )
        if plan_count.listed(b) and b.get("validationStreamObjects"):  # one side only: the target's checksum is S3's
            lines.append(
                f"    full validation streams {b['validationStreamObjects']} source objects without a checksum "
                f"({_size(b['validationStreamBytes'])} of GETs from {p['sourceRegion']}: inter-region transfer "
                f"when validation runs in {p['targetRegion']}); the rest is proven by stored checksums"
            )
        lines += plan_estimate.estimate_lines(b["cost"]) if b.get("cost") else []
    for t in p["tables"]:
        cost = t.get("cost") or {}
        items, nbytes = cost.get("items", t["items"]), cost.get("bytes", t["bytes"])
        lines.append(
            f"  dynamodb {t['name']} -> {t['target']}: ~{items} items, ~{_size(nbytes)} "
            f"({cost.get('sizeFrom') or 'DynamoDB approximate counts'})"
        )
        lines += plan_estimate.estimate_lines(cost) if cost else []
    tot = p["totals"]
    if p.get("cost"):
        lines += ["", *plan_estimate.total_lines(p["cost"])]
    lines.append("")
    approx = "" if all(plan_count.listed(b) for b in p["buckets"]) else "~"  # CloudWatch counted a bucket
    lines.append(
        f"  to move: {approx}{tot['objects']} objects ({approx}{_size(tot['bytes'])}), ~{tot['items']} items "
        f"(~{_size(tot['itemBytes'])}). Nothing has been changed."
    )
    return "\n".join(lines)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
