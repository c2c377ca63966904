"""Target S3 buckets: versioned, encrypted with the migration CMK, private, TLS-only, with lifecycle.

Every setting is read back after it is applied, so the report shows what the backend holds, and a re-run
repairs whatever drifted (someone suspended versioning, removed the public access block, ...).
"""

from __future__ import annotations

import json
from typing import Any

from config.model import BucketSpec, MigrationConfig
from tasks.aws import Backend, bucket_arn, error_code, is_not_found, tag_dict, tag_list
from tasks.aws import bucket_region as normalize_region
from tasks.errors import CollisionError, UserError
from tasks.names import STAGING
from tasks.provision.common import ALREADY_GONE, FAILED, REMOVED, lookup
from tasks.provision.s3_settings import (  # the pure half of this module (tests import them from here too)
    PUBLIC_ACCESS_BLOCK,
    TLS_SID,
    _as_list,
    is_tls_only,
    lifecycle_rules,
    summarize_lifecycle,
    tls_only_policy,
)
from tasks.steps import step

NOT_SUPPORTED = "notSupportedByBackend"
# Never written: a HEAD of it tells whether a bucket policy denies this client (403) or not (404).
PROBE_KEY = ".region-migration/policy-probe"
_UNSUPPORTED_CODES = {"NotImplemented", "501", "InvalidAction", "UnsupportedOperation"}


def _read(call: Any, **kwargs: Any) -> Any:
    """Call a Get* API; None when the configuration is absent, NOT_SUPPORTED when the backend lacks it."""
    try:
        return call(**kwargs)
    except Exception as err:
        if is_not_found(err):
            return None
        if error_code(err) in _UNSUPPORTED_CODES:
            return NOT_SUPPORTED
        raise


def describe_bucket(backend: Backend, region: str, bucket: str) -> dict[str, Any]:
    """Every setting we care about, read from the backend (read-only; provision, report, validation)."""
    s3 = backend.client("s3", region)
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    actual_region = normalize_region(location)

    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled"

    enc_resp = _read(s3.get_bucket_encryption, Bucket=bucket)
    encryption: dict[str, Any] | str | None
    if enc_resp is None or enc_resp == NOT_SUPPORTED:
        encryption = enc_resp
    else:
        rules = enc_resp.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        rule = rules[0] if rules else {}
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        encryption = {
            "algorithm": default.get("SSEAlgorithm"),
            "kmsKeyArn": default.get("KMSMasterKeyID"),
            "bucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
        }

    pab_resp = _read(s3.get_public_access_block, Bucket=bucket)
    pab: dict[str, bool] | str | None
    if pab_resp is None or pab_resp == NOT_SUPPORTED:
        pab = pab_resp
    else:
        conf = pab_resp.get("PublicAccessBlockConfiguration", {})
        pab = {k: bool(conf.get(k, False)) for k in PUBLIC_ACCESS_BLOCK}

    lc_resp = _read(s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    lifecycle: list[dict[str, Any]] | str = (
        NOT_SUPPORTED if lc_resp == NOT_SUPPORTED else summarize_lifecycle((lc_resp or {}).get("Rules", []))
    )

    pol_resp = _read(s3.get_bucket_policy, Bucket=bucket)
    policy: dict[str, Any] | None = None
    if isinstance(pol_resp, dict) and pol_resp.get("Policy"):
        policy = json.loads(pol_resp["Policy"])

    tags = bucket_tags(s3, bucket)

    return {
        "name": bucket,
        "arn": bucket_arn(bucket, actual_region),
        "region": actual_region,
        "versioning": versioning,
        "encryption": encryption,
        "publicAccessBlock": pab,
        "lifecycle": lifecycle,
        "tlsOnlyPolicy": NOT_SUPPORTED if pol_resp == NOT_SUPPORTED else is_tls_only(policy, bucket),
        "policyStatements": [s.get("Sid") for s in _as_list(policy.get("Statement", []))] if policy else [],
        "tags": tags,
    }


def head(s3: Any, bucket: str) -> str:
    """'absent', 'present' (this account can read it) or 'forbidden' (the name is another account's)."""
    try:
        s3.head_bucket(Bucket=bucket)
        return "present"
    except Exception as err:
        if error_code(err) in {"403", "AccessDenied", "Forbidden"}:
            return "forbidden"
        if is_not_found(err):
            return "absent"
        raise


def bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    """The bucket's tags ({} when it has none or the backend cannot tag buckets)."""
    tag_resp = _read(s3.get_bucket_tagging, Bucket=bucket)
    return tag_dict(tag_resp.get("TagSet")) if isinstance(tag_resp, dict) else {}


def _exists(s3: Any, bucket: str) -> bool:
    """True when the bucket exists in our account; a bucket owned by another account is a collision."""
    state = head(s3, bucket)
    if state == "forbidden":
        raise CollisionError(
            f"S3 bucket {bucket} already exists and belongs to another AWS account; "
            "change timestamp or environmentSuffix so the target name is free"
        )
    return state == "present"


def _check_owner(s3: Any, cfg: MigrationConfig, bucket: str, region: str) -> None:
    if not cfg.owns(bucket_tags(s3, bucket)):
        raise CollisionError(
            f"S3 bucket {bucket} already exists but this migration did not create it (tags lack "
            "ManagedBy/MigrationBatch/Environment); delete it or change timestamp/environmentSuffix"
        )
    actual = normalize_region(s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"))
    if actual != region:
        raise CollisionError(
            f"S3 bucket {bucket} exists in {actual}, not in the target region {region}; "
            "delete it or change timestamp/environmentSuffix"
        )


def create_or_claim(s3: Any, cfg: MigrationConfig, bucket: str, region: str) -> bool:
    """Create the bucket in `region`, or check that the existing one is ours and there; True when created."""
    if _exists(s3, bucket):
        _check_owner(s3, cfg, bucket, region)
        return False
    created = False
    # Tags at creation (where supported) close the window in which a crash leaves an untagged bucket
    # that the next run would call a collision; they are put again below for backends that drop them.
    conf: dict[str, Any] = {"Tags": tag_list(cfg.tags())}
    if region != "us-east-1":
        conf["LocationConstraint"] = region
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=conf)
        created = True
    except Exception as err:
        code = error_code(err)
        if code == "BucketAlreadyExists":
            raise CollisionError(
                f"S3 bucket name {bucket} is taken by another AWS account; "
                "change timestamp or environmentSuffix so the target name is free"
            ) from None
        if code != "BucketAlreadyOwnedByYou":  # a parallel run won the race: converge it below
            raise
        _check_owner(s3, cfg, bucket, region)
    s3.get_waiter("bucket_exists").wait(Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return created


@step("provision-bucket", run_name="provision-bucket-{spec.name}")
def ensure_bucket(backend: Backend, cfg: MigrationConfig, spec: BucketSpec, kms_key_arn: str) -> dict[str, Any]:
    """Create or converge one target bucket; return its settings read back plus created/repaired."""
    region = cfg.target_region
    bucket = cfg.target_name(spec.name)
    s3 = backend.client("s3", region)
    created = create_or_claim(s3, cfg, bucket, region)

    unsupported: dict[str, str] = {}
    fixed = _converge(s3, cfg, spec, bucket, region, kms_key_arn, unsupported)
    out = {"source": spec.name, **describe_bucket(backend, region, bucket)}
    if created and "tags" in fixed:  # measured: the backend dropped CreateBucketConfiguration.Tags (moto 5.2)
        unsupported["tagsAtCreateBucket"] = "CreateBucket ignored its Tags; the bucket was tagged right after"
    return out | {
        "created": created,
        "repaired": [] if created else fixed,
        "notSupportedByBackend": unsupported,
    }


STAGING_DAYS = 7  # exports are copies of source data: gone a week later even if teardown never runs


@step("provision-staging-bucket")
def ensure_staging_bucket(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    """The DynamoDB export/import staging bucket (tasks.names.staging_bucket): a target bucket like the others
    (tagged, SSE-KMS with the migration key, public access blocked, TLS-only), whose objects expire."""
    return ensure_bucket.fn(backend, cfg, BucketSpec(name=STAGING, lifecycleDays=STAGING_DAYS), kms_key_arn)


def _probe(s3: Any, bucket: str) -> str:
    """'allowed' or 'denied': may this very client read the bucket? A HEAD of a key we never write answers
    404 when allowed and 403 when a policy denies us, without touching the bucket's contents."""
    try:
        s3.head_object(Bucket=bucket, Key=PROBE_KEY)
        return "allowed"
    except Exception as err:
        code = error_code(err)
        if code in {"403", "AccessDenied", "Forbidden"}:
            return "denied"
        if is_not_found(err):
            return "allowed"
        raise


def _converge(
    s3: Any,
    cfg: MigrationConfig,
    spec: BucketSpec,
    bucket: str,
    region: str,
    kms_key_arn: str,
    unsupported: dict[str, str],
) -> list[str]:
    """Apply every setting that differs from what we want; return the names of those applied.

    A setting the backend cannot carry is rolled back and recorded in `unsupported` with the measurement.
    """
    fixed: list[str] = tag_and_block_public(s3, cfg, bucket)

    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        fixed.append("versioning")

    enc = _read(s3.get_bucket_encryption, Bucket=bucket)
    rules = enc.get("ServerSideEncryptionConfiguration", {}).get("Rules", []) if isinstance(enc, dict) else []
    rule = rules[0] if rules else {}
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    if (
        default.get("SSEAlgorithm") != "aws:kms"
        or default.get("KMSMasterKeyID") != kms_key_arn
        or not rule.get("BucketKeyEnabled")
    ):
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": kms_key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        fixed.append("encryption")

    want_rules = lifecycle_rules(spec)
    lc = _read(s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    have_rules = lc.get("Rules", []) if isinstance(lc, dict) else []
    if summarize_lifecycle(have_rules) != summarize_lifecycle(want_rules):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": want_rules})
        fixed.append("lifecycle")

    if ensure_tls_only(s3, bucket, region, unsupported):
        fixed.append("tlsOnlyPolicy")
    return fixed


def tag_and_block_public(s3: Any, cfg: MigrationConfig, bucket: str) -> list[str]:
    """Our tags (others' kept) and every public access block setting on; the names of those applied."""
    fixed: list[str] = []
    tags = bucket_tags(s3, bucket)
    if any(tags.get(k) != v for k, v in cfg.tags().items()):
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list({**tags, **cfg.tags()})})
        fixed.append("tags")
    pab = _read(s3.get_public_access_block, Bucket=bucket)
    conf = pab.get("PublicAccessBlockConfiguration", {}) if isinstance(pab, dict) else {}
    if any(conf.get(k) is not True for k in PUBLIC_ACCESS_BLOCK):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(PUBLIC_ACCESS_BLOCK))
        fixed.append("publicAccessBlock")
    return fixed


def ensure_tls_only(s3: Any, bucket: str, region: str, unsupported: dict[str, str]) -> bool:
    """Put the TLS-only statement in the bucket policy (others' statements kept); True when it was put. Rolled back
    (and recorded in `unsupported`) where the backend then refuses this client's own requests."""
    pol = _read(s3.get_bucket_policy, Bucket=bucket)
    policy = json.loads(pol["Policy"]) if isinstance(pol, dict) and pol.get("Policy") else None
    if is_tls_only(policy, bucket):
        return False
    # Keep statements others added (e.g. a replication grant); replace only ours.
    want = tls_only_policy(bucket, region)
    others = [
        s for s in _as_list((policy or {}).get("Statement", [])) if isinstance(s, dict) and s.get("Sid") != TLS_SID
    ]
    want["Statement"] = others + want["Statement"]
    before = _probe(s3, bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(want))
    if before == "allowed" and _probe(s3, bucket) == "denied":
        # Our own requests are refused only because of this policy: the backend does not evaluate
        # aws:SecureTransport (moto 5.2 ignores the Bool operator and denies everything) or its
        # endpoint is plain HTTP. Leaving it would block the migration, so put back what was there.
        if policy:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        else:
            s3.delete_bucket_policy(Bucket=bucket)
        unsupported["tlsOnlyPolicy"] = (
            "with the TLS-only policy applied the backend refused this client's own requests "
            "(no aws:SecureTransport support or a plain-HTTP endpoint), so the policy was removed"
        )
        return False
    return True


# ---------------------------------------------------------------- find / delete (teardown, preflight)

COUNT_CAP = 10_000  # object versions counted per bucket for a teardown plan; "10000+" beyond


def find_bucket(backend: Backend, cfg: MigrationConfig, source: str, bucket: str) -> dict[str, Any] | None:
    """A target bucket with one of our names, whether its tags say it is ours, and (if ours) what it holds."""
    s3 = backend.client("s3", cfg.target_region)
    state = head(s3, bucket)
    if state == "absent":
        return None
    entry: dict[str, Any] = {"name": bucket, "source": source, "region": cfg.target_region}
    if state == "forbidden":
        return entry | {"owned": False, "reason": "the name is taken by a bucket this account cannot read"}
    entry["owned"] = cfg.owns(bucket_tags(s3, bucket))
    if entry["owned"]:
        versions, markers, capped = count_versions(s3, bucket)
        has_data = versions > 0 or (capped and bucket_has_data(s3, bucket))
        entry.update(objectVersions=versions, deleteMarkers=markers, countCapped=capped, hasData=has_data)
    return entry


def count_versions(s3: Any, bucket: str, cap: int = COUNT_CAP) -> tuple[int, int, bool]:
    """(object versions, delete markers, capped) - capped counts stop at `cap` entries."""
    versions = markers = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions += len(page.get("Versions", []))
        markers += len(page.get("DeleteMarkers", []))
        if versions + markers >= cap:
            return versions, markers, True
    return versions, markers, False


def bucket_has_data(s3: Any, bucket: str) -> bool:
    """Whether any object version exists, read page by page until one is seen or the listing ends.

    One page is no answer: MaxKeys counts delete markers too, so a bucket whose first keys end in delete markers
    (common after cutover, from replication or lifecycle) answers a page with no Versions while older versions of
    those keys, and every later key, still hold data.
    """
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    return any(page.get("Versions") for page in pages)


def delete_bucket(backend: Backend, region: str, bucket: str, delete_data: bool) -> dict[str, Any]:
    """Every object version and delete marker must go before DeleteBucket; data is re-checked right now."""
    s3 = backend.client("s3", region)
    if head(s3, bucket) == "absent":
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    if not delete_data and bucket_has_data(s3, bucket):
        return {"status": "kept (pass --delete-target-data)", "measured": "bucket holds object versions"}
    deleted = 0
    for _ in range(5):  # a few passes: a writer may still be finishing
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        deleted += delete_versions(s3, bucket)
        try:
            s3.delete_bucket(Bucket=bucket)
            break
        except Exception as err:
            if error_code(err) != "BucketNotEmpty":
                raise
    if head(s3, bucket) != "absent":
        return {"status": FAILED, "error": "still present after deletion", "versionsDeleted": deleted}
    return {"status": REMOVED, "measured": "head_bucket: not found after deletion", "versionsDeleted": deleted}


def delete_versions(s3: Any, bucket: str, prefix: str = "") -> int:
    """Remove every object version and delete marker (under `prefix`), a listing page (at most 1,000 entries, the
    DeleteObjects maximum) at a time: on a versioned bucket a DELETE without a version id only adds a marker and
    keeps the data. Returns how many went; any refused raises."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if not objects:
            continue
        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True}).get("Errors") or []
        if errors:
            first = errors[0]
            where = f"s3://{bucket}/{prefix}"
            raise UserError(f"{where}: {len(errors)} versions not deleted ({first.get('Code')}: {first.get('Key')})")
        deleted += len(objects)
    return deleted


def get_replication(s3: Any, bucket: str) -> dict[str, Any] | None:
    """The bucket's replication configuration, or None when it has none."""
    resp = lookup(s3.get_bucket_replication, Bucket=bucket)
    return dict(resp["ReplicationConfiguration"]) if resp else None


def source_changes(backend: Backend, region: str, bucket: str, rule_id: str) -> dict[str, Any] | None:
    """What a migration may have changed on a source bucket: our rule present?, the other rules, versioning."""
    s3 = backend.client("s3", region)
    if head(s3, bucket) == "absent":
        return None
    rules = list((get_replication(s3, bucket) or {}).get("Rules", []))
    return {
        "hasRule": any(r.get("ID") == rule_id for r in rules),
        "otherRules": sorted(str(r.get("ID")) for r in rules if r.get("ID") != rule_id),
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled",
    }


def remove_replication_rule(backend: Backend, region: str, bucket: str, rule_id: str) -> dict[str, Any]:
    """Remove only our rule by ID (PutBucketReplication replaces the whole set, so the others are written back
    unchanged); delete the configuration only when ours was the only rule."""
    s3 = backend.client("s3", region)
    config = get_replication(s3, bucket)
    rules = list((config or {}).get("Rules", []))
    if not any(r.get("ID") == rule_id for r in rules):
        return {"status": ALREADY_GONE, "measured": f"rule {rule_id} not found"}
    others = [r for r in rules if r.get("ID") != rule_id]
    if others:
        role = (config or {})["Role"]
        s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={"Role": role, "Rules": others})
    else:
        s3.delete_bucket_replication(Bucket=bucket)
    after = get_replication(s3, bucket)
    ids = {r.get("ID") for r in (after or {}).get("Rules", [])}
    if rule_id in ids:
        return {"status": FAILED, "error": f"rule {rule_id} still present"}
    lost = sorted(str(r.get("ID")) for r in others if r.get("ID") not in ids)
    if lost:
        return {"status": FAILED, "error": f"other rules missing after the change: {', '.join(lost)}"}
    kept = sorted(str(i) for i in ids)
    how = f"other rules kept: {', '.join(kept)}" if kept else "replication configuration deleted"
    return {"status": REMOVED, "measured": f"rule {rule_id} absent; {how}", "otherRulesKept": kept}


def suspend_versioning(backend: Backend, region: str, bucket: str) -> dict[str, Any]:
    """Suspend versioning (S3 cannot switch it off once on), unless a replication rule still needs it."""
    s3 = backend.client("s3", region)
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled"
    if status != "Enabled":
        return {"status": ALREADY_GONE, "measured": f"versioning is {status}"}
    remaining = (get_replication(s3, bucket) or {}).get("Rules", [])
    if remaining:
        return {
            "status": "kept (replication rules on the bucket need versioning: "
            f"{', '.join(str(r.get('ID')) for r in remaining)})"
        }
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    now = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if now != "Suspended":
        return {"status": FAILED, "error": f"versioning is {now} after suspending"}
    return {
        "status": "suspended",
        "measured": "get_bucket_versioning: Suspended",
        "note": "S3 versioning cannot be disabled once enabled; it is suspended and existing versions are kept",
    }
