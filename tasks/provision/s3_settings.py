"""The target bucket's wanted settings and the rules that read them back (pure: no AWS calls).

Kept apart from tasks/provision/s3.py (the service's AWS calls) so both stay readable; that module
re-exports these names.
"""

from __future__ import annotations

from typing import Any

from config.model import BucketSpec
from tasks.aws import bucket_arn

TLS_SID = "DenyInsecureTransport"
LIFECYCLE_ID = "region-migration-expiry"
ABORT_MULTIPART_DAYS = 7
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def tls_only_policy(bucket: str, region: str = "us-east-1") -> dict[str, Any]:
    """A bucket policy refusing every request not made over TLS (the seed's encryption-in-transit rule)."""
    arn = bucket_arn(bucket, region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": TLS_SID,
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def lifecycle_rules(spec: BucketSpec) -> list[dict[str, Any]]:
    """Expire objects (and their old versions) after lifecycleDays; abort stale multipart uploads."""
    return [
        {
            "ID": LIFECYCLE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"Days": spec.lifecycle_days},
            "NoncurrentVersionExpiration": {"NoncurrentDays": spec.lifecycle_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }
    ]


def summarize_lifecycle(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of lifecycle rules that matter to us, in a shape that compares equal across backends."""
    out = []
    for r in rules:
        out.append(
            {
                "id": r.get("ID"),
                "status": r.get("Status"),
                "expirationDays": (r.get("Expiration") or {}).get("Days"),
                "noncurrentExpirationDays": (r.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
                "abortMultipartDays": (r.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation"),
            }
        )
    return sorted(out, key=lambda r: str(r["id"]))


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def is_tls_only(policy: dict[str, Any] | None, bucket: str) -> bool:
    """True when the policy has a Deny of all S3 actions, for everyone, on the bucket and its objects,
    whenever aws:SecureTransport is false. Measured from the policy text, not assumed from what we put."""
    if not policy:
        return False
    for st in _as_list(policy.get("Statement", [])):
        if not isinstance(st, dict) or st.get("Effect") != "Deny":
            continue
        principal = st.get("Principal")
        if principal != "*" and not (isinstance(principal, dict) and _as_list(principal.get("AWS")) == ["*"]):
            continue
        if not {"s3:*", "*"} & set(_as_list(st.get("Action", []))):
            continue
        resources = {str(r).split(":::", 1)[-1] for r in _as_list(st.get("Resource", []))}
        if not {bucket, f"{bucket}/*"} <= resources:
            continue
        cond = st.get("Condition", {})
        value = (cond.get("Bool") or {}).get("aws:SecureTransport")
        if str(_as_list(value)[0] if value is not None else "").lower() == "false":
            return True
    return False
