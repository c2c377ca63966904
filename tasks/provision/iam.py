"""Least-privilege IAM roles for S3 replication and the validation Lambda (IAM is global).

Policies are built by pure functions so they can be reviewed and unit-tested without AWS: every
statement names the exact ARNs it needs, no action contains '*', and the only Resource pattern that is
not one exact ARN is the source-region KMS key pattern of the replication role, which is pinned by
kms:ViaService + the S3 encryption context (see `replication_role_policies`).
The ensure functions read everything back from IAM, so the returned "wildcardActions" are measured on
the stored policy, not on the one we meant to store.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, arn, bucket_arn, is_not_found, tag_dict, tag_list
from tasks.move.keys import RESULT_PK
from tasks.names import ResourceNames, resource_names
from tasks.provision.common import claim, delete_measured, lookup
from tasks.provision.iam_batch import reencrypt_statements
from tasks.steps import step

POLICY_NAME = "region-migration"
VERSION = "2012-10-17"

Policy = dict[str, Any]


# ---------------------------------------------------------------- pure ARN helpers and policy builders


def table_arn(region: str, account_id: str, name: str) -> str:
    """A DynamoDB table's ARN, computed from its name so policies can be built before the table exists."""
    return arn("dynamodb", region, account_id, f"table/{name}")


def _arn_part(arn: str, index: int) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[index]


def trust_policy(service: str) -> Policy:
    """Only `service` may assume the role."""
    return {
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def replication_role_policies(
    source_buckets: list[str],
    target_buckets: list[str],
    kms_key_arn: str,
    *,
    source_region: str,
    account_id: str | None = None,
) -> tuple[Policy, Policy]:
    """(trust, permissions) for the role S3 assumes to replicate source buckets into target buckets.

    The target CMK's region and account come from its ARN; `account_id` defaults to that account.
    """
    if not source_buckets or not target_buckets:
        raise ValueError("replication needs at least one source and one target bucket (IAM rejects empty Resource)")
    account = account_id or _arn_part(kms_key_arn, 4)
    target_region = _arn_part(kms_key_arn, 3)
    src = [bucket_arn(b, source_region) for b in source_buckets]
    dst = [bucket_arn(b, target_region) for b in target_buckets]
    statements: list[Policy] = [
        {
            "Sid": "ReadSourceReplicationConfig",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": src,
        },
        {
            "Sid": "ReadSourceObjectVersions",
            "Effect": "Allow",
            "Action": [
                "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionAcl",
                "s3:GetObjectVersionTagging",
                "s3:GetObjectRetention",
                "s3:GetObjectLegalHold",
            ],
            "Resource": [f"{a}/*" for a in src],
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": [f"{a}/*" for a in dst],
        },
        {
            # Replicas are encrypted with the target CMK, only through S3 in the target region and only
            # for the target buckets (object ARN, or bucket ARN when S3 Bucket Keys are on).
            "Sid": "EncryptReplicasWithTargetKey",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [kms_key_arn],
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{target_region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": sorted(dst + [f"{a}/*" for a in dst])},
            },
        },
        {
            # Source objects may be SSE-KMS encrypted with keys this project neither owns nor can list
            # (each object names its own key, and it may differ per object), so the Resource is the
            # pattern of all keys in the source region of this account. It is pinned down by the
            # conditions: the key can only be used through S3 in the source region, and only to decrypt
            # objects of the source buckets. Decrypt is the only action granted this way.
            "Sid": "DecryptSourceObjectsViaS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [arn("kms", source_region, account, "key/*")],
            "Condition": {
                "StringEquals": {"kms:ViaService": f"s3.{source_region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": sorted(src + [f"{a}/*" for a in src])},
            },
        },
    ]
    return trust_policy("s3.amazonaws.com"), {"Version": VERSION, "Statement": statements}


def batch_role_policies(
    source_buckets: list[str], reports_bucket: str, region: str, prefix: str
) -> tuple[Policy, Policy]:
    """(trust, permissions) for S3 Batch Replication jobs, as the S3 User Guide's "policy if using and storing an
    Amazon S3 generated manifest": InitiateReplication on the source buckets' objects, their replication
    configuration and the manifest generator's inventory on the source buckets, and the generated manifests and
    completion reports read and written under `prefix` of the migration's reports bucket only."""
    if not source_buckets:
        raise ValueError("Batch Replication needs at least one source bucket (IAM rejects an empty Resource)")
    src = sorted(bucket_arn(b, region) for b in source_buckets)
    under = [f"{bucket_arn(reports_bucket, region)}/{prefix.strip('/')}/*"]
    statements: list[Policy] = [
        {
            "Sid": "InitiateReplication",
            "Effect": "Allow",
            "Action": ["s3:InitiateReplication"],
            "Resource": [f"{a}/*" for a in src],
        },
        {
            "Sid": "GenerateManifestFromReplicationConfig",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:PutInventoryConfiguration"],
            "Resource": src,
        },
        {
            "Sid": "ReadManifest",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": under,
        },
        {"Sid": "WriteManifestAndReport", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": under},
    ]
    return trust_policy("batchoperations.s3.amazonaws.com"), {"Version": VERSION, "Statement": statements}


def lambda_role_policies(
    cfg: MigrationConfig, account_id: str, names: ResourceNames, kms_key_arn: str, topic_arn: str
) -> tuple[Policy, Policy]:
    """(trust, permissions) for the validator: exactly what lambda/validator/handler.py calls, each on its ARNs.

    Configuration checks read the target buckets and tables; the quick data checks list both buckets of a pair
    and scan both tables' keys (the source's TTL setting decides what is expired); the result goes to the
    checkpoint table (one partition); alerts and the dead-letter target are the topic. The CMK is used only
    through the services that need it (kms:ViaService): Lambda (the environment variables), SNS (publishing to
    the encrypted topic), DynamoDB (reading/writing CMK-encrypted tables).
    """
    region = cfg.target_region
    log_group = arn("logs", region, account_id, f"log-group:{names.log_group}")
    source_buckets = sorted(bucket_arn(b, cfg.source_region) for b in names.buckets)
    target_buckets = sorted(bucket_arn(b, region) for b in names.buckets.values())
    source_tables = sorted(table_arn(cfg.source_region, account_id, t) for t in names.tables)
    target_tables = sorted(table_arn(region, account_id, t) for t in names.tables.values())
    statements: list[Policy] = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            # Log streams live under the group: "<group ARN>:log-stream:<name>", hence the ":*".
            "Resource": [log_group, f"{log_group}:*"],
        },
        {
            # The handler's alerts, and Lambda itself delivering a failed asynchronous event (the DLQ).
            "Sid": "PublishAlerts",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [topic_arn],
        },
        {
            # Only items whose partition key is the validator's (dynamodb:LeadingKeys): the role cannot touch
            # the copy manifests, stream positions or locks that share the table.
            "Sid": "RecordResult",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem"],
            "Resource": [table_arn(region, account_id, names.checkpoint_table)],
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [RESULT_PK]}},
        },
        {
            "Sid": "DecryptEnvironmentViaLambda",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"lambda.{region}.amazonaws.com"}},
        },
        {
            # Publishing to an SSE-KMS topic needs GenerateDataKey and Decrypt on its key (SNS docs).
            "Sid": "PublishToEncryptedTopicViaSns",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
        },
        {
            "Sid": "UseEncryptedTablesViaDynamoDB",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}},
        },
    ]
    if target_buckets:
        statements += [
            {
                "Sid": "ReadTargetBucketConfiguration",
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucketPublicAccessBlock",
                    "s3:GetBucketVersioning",
                    "s3:GetEncryptionConfiguration",
                ],
                "Resource": target_buckets,
            },
            {
                "Sid": "ListBothSides",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": sorted(source_buckets + target_buckets),
            },
        ]
    if target_tables:
        statements += [
            {
                "Sid": "ReadTargetTables",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeContinuousBackups", "dynamodb:DescribeTable", "dynamodb:Scan"],
                "Resource": target_tables,
            },
            {
                "Sid": "ReadSourceTables",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive", "dynamodb:Scan"],
                "Resource": source_tables,
            },
        ]
    return trust_policy("lambda.amazonaws.com"), {"Version": VERSION, "Statement": statements}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _named(policy: Policy, element: str) -> list[str]:
    """Every value of `element` (and of its Not- form) across a policy's statements, sorted and de-duplicated."""
    out: set[str] = set()
    for st in _as_list_of_dicts(policy.get("Statement")):
        out.update(_as_list(st.get(element)))
        out.update(_as_list(st.get(f"Not{element}")))
    return sorted(out)


def policy_actions(policy: Policy) -> list[str]:
    """Every action a policy document names, sorted and de-duplicated."""
    return _named(policy, "Action")


def policy_resources(policy: Policy) -> list[str]:
    """Every Resource a policy document names, sorted and de-duplicated."""
    return _named(policy, "Resource")


def _as_list_of_dicts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return [v for v in value or [] if isinstance(v, dict)]


def wildcard_actions(policy: Policy) -> list[str]:
    """Actions containing '*' (must be empty for our roles)."""
    return [a for a in policy_actions(policy) if "*" in a]


_S3_ARN = re.compile(r"^arn:[a-z-]+:s3:::")
_LOGS_ARN = re.compile(r"^arn:[a-z-]+:logs:")


def wildcard_resources(policy: Policy) -> list[str]:
    """Resources broader than one named resource: '*' or a wildcard anywhere except the objects of one
    named bucket ('arn:aws:s3:::b/*') or the streams of one named log group ('...:log-group:g:*'), in any
    partition. For our roles only the documented source-region KMS pattern of the replication role may appear."""
    out = []
    for r in policy_resources(policy):
        objects = bool(_S3_ARN.match(r)) and r.endswith("/*")
        streams = bool(_LOGS_ARN.match(r)) and ":log-group:" in r and r.endswith(":*")
        scoped = r[:-2] if objects or streams else r
        if "*" in scoped:
            out.append(r)
    return out


def _canonical(doc: Any) -> str:
    if isinstance(doc, str):
        doc = json.loads(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _trust_principal(trust: Policy) -> list[str]:
    out: list[str] = []
    for st in _as_list_of_dicts(trust.get("Statement")):
        principal = st.get("Principal") or {}
        if isinstance(principal, dict):
            out += _as_list(principal.get("Service"))
    return sorted(out)


# ---------------------------------------------------------------- AWS


def ensure_role(
    backend: Backend, cfg: MigrationConfig, name: str, trust: Policy, policy: Policy, description: str
) -> dict[str, Any]:
    """Create the role with its inline policy, or repair trust/policy/tags/description; read it back."""
    iam = backend.client("iam", cfg.target_region)
    created = False
    repaired: list[str] = []
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as err:
        if not is_not_found(err):
            raise
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=description,
            Tags=tag_list(cfg.tags()),
        )["Role"]
        created = True
    if not created:
        tags = role_tags(iam, name)
        claim(cfg, tags, f"IAM role {name!r} already exists", "delete or rename it, or change timestamp")
        if any(tags.get(k) != v for k, v in cfg.tags().items()):
            iam.tag_role(RoleName=name, Tags=tag_list(cfg.tags()))
            repaired.append("tags")
        if _canonical(role.get("AssumeRolePolicyDocument") or {}) != _canonical(trust):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            repaired.append("trustPolicy")
        if (role.get("Description") or "") != description:
            iam.update_role(RoleName=name, Description=description)
            repaired.append("description")
    current = _inline_policy(iam, name)
    if current is None or _canonical(current) != _canonical(policy):
        iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
        if not created:
            repaired.append("inlinePolicy")
    return read_role(backend, cfg, name) | {"created": created, "repaired": repaired}


def _inline_policy(iam: Any, name: str) -> Policy | None:
    try:
        doc = iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    return json.loads(doc) if isinstance(doc, str) else dict(doc)


def read_role(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any]:
    """What IAM says about the role: trust principal, our inline policy's actions, anything else attached."""
    iam = backend.client("iam", cfg.target_region)
    role = iam.get_role(RoleName=name)["Role"]
    trust = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(trust, str):
        trust = json.loads(trust)
    policy = _inline_policy(iam, name) or {}
    inline = sorted(iam.list_role_policies(RoleName=name).get("PolicyNames", []))
    attached = sorted(
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", [])
    )
    return {
        "name": role["RoleName"],
        "arn": role["Arn"],
        "trustPrincipal": _trust_principal(trust),
        "policyName": POLICY_NAME if policy else None,
        "policyActions": policy_actions(policy),
        "policyResources": policy_resources(policy),
        "wildcardActions": wildcard_actions(policy),
        "wildcardResources": wildcard_resources(policy),
        # Anything else granted to the role widens it beyond least privilege: reported, not removed,
        # because someone put it there on purpose and deleting grants silently is worse.
        "otherInlinePolicies": [p for p in inline if p != POLICY_NAME],
        "attachedManagedPolicies": attached,
    }


@step("provision-replication-role")
def ensure_replication_role(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    """The role S3 replication assumes: source buckets -> target buckets, replicas under the target CMK."""
    names = resource_names(cfg)
    if not names.buckets:
        # Tables-only migration: no S3 replication, so no role (an empty policy would be rejected anyway).
        return {
            "name": names.replication_role,
            "arn": None,
            "created": False,
            "repaired": [],
            "skipped": "no s3Buckets in the config",
        }
    trust, policy = replication_role_policies(
        list(names.buckets),
        list(names.buckets.values()),
        kms_key_arn,
        source_region=cfg.source_region,
        account_id=backend.account_id(cfg.target_region),
    )
    return ensure_role(
        backend,
        cfg,
        names.replication_role,
        trust,
        policy,
        f"S3 replication {cfg.source_region} -> {cfg.target_region} for region-migration {cfg.migration_batch}",
    )


@step("provision-batch-role")
def ensure_batch_role(backend: Backend, cfg: MigrationConfig, prefix: str, kms_key_arn: str = "") -> dict[str, Any]:
    """The role S3 Batch Operations assumes for the Batch jobs: every bucket of the config by name (a fixed policy, so
    buckets side by side never race on a read-modify-write of it); with the key, the re-encryption job's rights."""
    names = resource_names(cfg)
    trust, policy = batch_role_policies(list(names.buckets), names.reports_bucket, cfg.source_region, prefix)
    if kms_key_arn:
        policy["Statement"] += reencrypt_statements(list(names.buckets.values()), cfg.target_region, kms_key_arn)
    about = f"S3 Batch Replication in {cfg.source_region} for region-migration {cfg.migration_batch}"
    return ensure_role(backend, cfg, names.batch_role, trust, policy, about)


@step("provision-validator-role")
def ensure_lambda_role(backend: Backend, cfg: MigrationConfig, kms_key_arn: str, topic_arn: str) -> dict[str, Any]:
    """The validation Lambda's execution role."""
    names = resource_names(cfg)
    trust, policy = lambda_role_policies(cfg, backend.account_id(cfg.target_region), names, kms_key_arn, topic_arn)
    return ensure_role(
        backend,
        cfg,
        names.lambda_role,
        trust,
        policy,
        f"Validation Lambda of region-migration {cfg.migration_batch} ({cfg.environment_suffix})",
    )


def role_tags(iam: Any, name: str) -> dict[str, str]:
    return tag_dict(iam.list_role_tags(RoleName=name).get("Tags"))


# ---------------------------------------------------------------- find / delete (teardown, preflight)


def find_role(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any] | None:
    """The role with our name, and whether its tags say it is ours (None: no such role)."""
    iam = backend.client("iam", cfg.target_region)
    resp = lookup(iam.get_role, RoleName=name)
    if resp is None:
        return None
    return {"name": name, "arn": resp["Role"]["Arn"], "region": "global", "owned": cfg.owns(role_tags(iam, name))}


def delete_role(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any]:
    """Inline policies, attached policies and instance profiles go first: IAM refuses to delete a role with any."""
    iam = backend.client("iam", cfg.target_region)

    def remove() -> None:
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy in page.get("PolicyNames", []):
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for policy in page.get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
            for profile in page.get("InstanceProfiles", []):
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)

    return delete_measured(remove, partial(lookup, iam.get_role, RoleName=name))
