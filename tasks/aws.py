"""One way to reach AWS, whichever backend: only the endpoint and the credentials differ.

A `Backend` is a small frozen value, so it can be passed to Prefect tasks (it hashes and pickles);
boto3 clients are built from it on demand and cached per (backend, service, region), because
building a client costs milliseconds and tasks run in many threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import boto3
import botocore.config
import botocore.session
from botocore.exceptions import ClientError

BackendKind = Literal["emulator", "endpoint", "aws"]

# Standard retry mode: exponential backoff with full jitter on throttling, 5xx and transient network
# errors. Adaptive mode's client-side rate limiter would serialise our worker pools, so we stay standard.
MAX_ATTEMPTS = 8
MAX_POOL = 64

EMULATOR_ACCESS_KEY = "testing"
EMULATOR_SECRET_KEY = "testing"


@dataclass(frozen=True)
class Backend:
    """Where AWS calls go: the embedded emulator, any AWS-compatible endpoint, or real AWS."""

    kind: BackendKind
    endpoint_url: str | None = None
    profile: str | None = None
    # Names of prefect-aws AwsCredentials blocks per region, as ((region, block), ...): hashable.
    credentials_blocks: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> str:
        """A human description for logs and reports; never includes credentials."""
        if self.kind == "aws":
            how = (
                f"profile {self.profile}"
                if self.profile
                else ("AwsCredentials blocks" if self.credentials_blocks else "default credential chain")
            )
            return f"aws ({how})"
        return f"{self.kind} ({self.endpoint_url})"

    def client(self, service: str, region: str, max_attempts: int = MAX_ATTEMPTS) -> Any:
        """A cached boto3 client for `service` in `region`, with retries and a pool sized for our workers.

        Probes that should fail fast (preflight's first call) ask for fewer attempts.
        """
        key = (self, service, region, max_attempts)
        with _LOCK:
            cached = _CLIENTS.get(key)
            if cached is None:
                session, endpoint = self._session(region)
                cached = session.client(
                    service, region_name=region, endpoint_url=endpoint, config=self._config(max_attempts, endpoint)
                )
                _CLIENTS[key] = cached
        return cached

    def account_id(self, region: str, max_attempts: int = MAX_ATTEMPTS) -> str:
        """The account these credentials act in: one GetCallerIdentity per credentials, remembered for the
        process (ARNs and policies need it in many places; the answer cannot change for the same keys)."""
        key = (self, dict(self.credentials_blocks).get(region))  # a region's own block may be another account
        with _ACCOUNT_LOCK:  # held across the call, so threads provisioning side by side ask once
            if key not in _ACCOUNTS:
                sts = self.client("sts", region, max_attempts=max_attempts)
                _ACCOUNTS[key] = str(sts.get_caller_identity()["Account"])
            return _ACCOUNTS[key]

    def _config(self, max_attempts: int, endpoint_url: str | None) -> botocore.config.Config:
        s3: dict[str, Any] = {"addressing_style": "path"} if endpoint_url else {}
        return botocore.config.Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=MAX_POOL,
            connect_timeout=10,
            read_timeout=120,
            s3=s3,  # type: ignore[arg-type]
        )

    def _session(self, region: str) -> tuple[Any, str | None]:
        """The session for `region` and the endpoint its clients use (a credentials block's AwsClientParameters
        endpoint_url, e.g. the emulator's, wins over the backend's)."""
        if self.kind == "emulator":
            session = boto3.session.Session(
                aws_access_key_id=EMULATOR_ACCESS_KEY,
                aws_secret_access_key=EMULATOR_SECRET_KEY,
                region_name=region,
            )
            return session, self.endpoint_url
        blocks = dict(self.credentials_blocks)
        if region in blocks:
            from prefect_aws import AwsCredentials

            creds: Any = AwsCredentials.load(blocks[region])
            return creds.get_boto3_session(), creds.aws_client_parameters.endpoint_url or self.endpoint_url
        return boto3.session.Session(profile_name=self.profile, region_name=region), self.endpoint_url


_LOCK = threading.Lock()
_CLIENTS: dict[tuple[Backend, str, str, int], Any] = {}
_ACCOUNT_LOCK = threading.Lock()
_ACCOUNTS: dict[tuple[Backend, str | None], str] = {}


def error_code(err: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(err: BaseException) -> bool:
    """True for the many spellings of 'does not exist' across AWS services."""
    code = error_code(err)
    return code in {
        "404",
        "NoSuchBucket",
        "NoSuchKey",
        "NotFound",
        "NoSuchEntity",
        "ResourceNotFoundException",
        "NotFoundException",
        "NoSuchPublicAccessBlockConfiguration",
        "ServerSideEncryptionConfigurationNotFoundError",
        "NoSuchLifecycleConfiguration",
        "NoSuchBucketPolicy",
        "NoSuchTagSet",
        "ReplicationConfigurationNotFoundError",
    } or code.endswith("NotFound")


@cache
def partition_of(region: str) -> str:
    """The ARN partition of a region ('aws', 'aws-cn', 'aws-us-gov', ...), from botocore's bundled endpoint data.

    The one source of partitions for every ARN we build, so aws-cn and aws-us-gov (and partitions added
    later) get the right ARNs without a list of prefixes of our own.
    """
    return str(botocore.session.get_session().get_partition_for_region(region))


def arn(service: str, region: str, account_id: str, resource: str) -> str:
    """A regional ARN in the region's partition: arn:{partition}:{service}:{region}:{account}:{resource}."""
    return f"arn:{partition_of(region)}:{service}:{region}:{account_id}:{resource}"


def global_arn(service: str, region: str, account_id: str, resource: str) -> str:
    """An ARN without a region field (IAM roles, S3 buckets), in the partition of `region`."""
    return f"arn:{partition_of(region)}:{service}::{account_id}:{resource}"


def bucket_arn(bucket: str, region: str) -> str:
    """A bucket's ARN: no region or account in S3 ARNs, only the partition of the bucket's region."""
    return global_arn("s3", region, "", bucket)


def bucket_region(location_constraint: str | None) -> str:
    """GetBucketLocation's LocationConstraint as a region code.

    S3 API reference (GetBucketLocation): "Buckets in Region us-east-1 have a LocationConstraint of null.
    Buckets with a LocationConstraint of EU reside in eu-west-1."
    """
    if not location_constraint:
        return "us-east-1"
    return "eu-west-1" if location_constraint == "EU" else location_constraint


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """Tags as AWS's [{'Key': k, 'Value': v}] list."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """AWS's tag list (Key/Value or TagKey/TagValue) as a dict."""
    out: dict[str, str] = {}
    for t in tags or []:
        out[t.get("Key", t.get("TagKey", ""))] = t.get("Value", t.get("TagValue", ""))
    return out


def clear_client_cache() -> None:
    """Forget cached clients and accounts (tests start a fresh emulator per test)."""
    with _LOCK:
        _CLIENTS.clear()
    with _ACCOUNT_LOCK:
        _ACCOUNTS.clear()
