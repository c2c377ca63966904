"""One way to reach AWS, whichever backend: only the endpoint and the credentials differ.

A `Backend` is a small frozen value, so it can be passed to Prefect tasks (it hashes and pickles);
boto3 clients are built from it on demand and cached per (backend, service, region), because
building a client costs milliseconds and tasks run in many threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, Literal

import boto3
import botocore.config
import botocore.session
from botocore import UNSIGNED
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc

BackendKind = Literal["emulator", "endpoint", "aws"]

# Standard retry mode: exponential backoff with full jitter on throttling, 5xx and transient network
# errors. Adaptive mode's client-side rate limiter would serialise our worker pools, so we stay standard.
MAX_ATTEMPTS = 8
MAX_POOL = 64

EMULATOR_ACCESS_KEY = "testing"
EMULATOR_SECRET_KEY = "testing"

# The services the pipeline calls (the report names each one's endpoint when configured apart).
SERVICES = ("s3", "dynamodb", "dynamodbstreams", "kms", "iam", "sts", "sns", "lambda", "logs", "cloudwatch", "pipes")


@dataclass(frozen=True)
class Backend:
    """Where AWS calls go: the embedded emulator, any AWS-compatible endpoint, or real AWS."""

    kind: BackendKind
    endpoint_url: str | None = None
    profile: str | None = None
    # Names of prefect-aws AwsCredentials blocks per region, as ((region, block), ...): hashable.
    credentials_blocks: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> str:
        """A human description for logs and reports; never includes credentials.

        Endpoints configured through botocore's own settings (AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the
        profile's `services` section) that differ from the backend's are listed per service, as they win over it
        (`endpoint_for`).
        """
        if self.kind == "aws":
            how = (
                f"profile {self.profile}"
                if self.profile
                else ("AwsCredentials blocks" if self.credentials_blocks else "default credential chain")
            )
            text = f"aws ({how})"
        else:
            text = f"{self.kind} ({self.endpoint_url})"
        try:
            configured = {} if self.kind == "emulator" else self.configured_endpoints()
        except BotoCoreError:  # a missing profile or services section: preflight names it in one line
            configured = {}
        apart = {svc: url for svc, url in configured.items() if url and url.rstrip("/") != (self.endpoint_url or "")}
        return text + describe_endpoints(apart)

    def configured_endpoints(self) -> dict[str, str | None]:
        """Each service the pipeline calls -> the endpoint botocore's own configuration names for it (None: none).

        Read from the backend's profile; a credentials block's own profile is read when its clients are built.
        """
        session = botocore.session.Session(profile=self.profile)
        return {service: configured_endpoint(session, service) for service in SERVICES}

    def client(self, service: str, region: str, max_attempts: int = MAX_ATTEMPTS) -> Any:
        """A cached boto3 client for `service` in `region`, with retries and a pool sized for our workers.

        Probes that should fail fast (preflight's first call) ask for fewer attempts.
        """
        key = (self, service, region, max_attempts)
        with _LOCK:
            cached = _CLIENTS.get(key)
            if cached is None:
                session, params = self._session(region)
                # Parsers are made per client from the session's factory: ours reads timestamps in C.
                session._session.get_component("response_parser_factory").set_parser_defaults(
                    timestamp_parser=fast_timestamp
                )
                ours = params.endpoint_url or self.endpoint_url
                # The embedded emulator is a server this run started: no machine setting may send its
                # clients (with the emulator's fake credentials) anywhere else.
                endpoint = (
                    ours if self.kind == "emulator" else endpoint_for(session._session, service, ours, params.config)
                )
                cached = session.client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint,
                    config=client_config(max_attempts, endpoint, params.config),
                    **params.client_kwargs,
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

    def _session(self, region: str) -> tuple[Any, ClientParameters]:
        """The session for `region` and the client parameters of its credentials block (none without one)."""
        if self.kind == "emulator":
            session = boto3.session.Session(
                aws_access_key_id=EMULATOR_ACCESS_KEY,
                aws_secret_access_key=EMULATOR_SECRET_KEY,
                region_name=region,
            )
            return session, ClientParameters()
        blocks = dict(self.credentials_blocks)
        if region in blocks:
            from prefect_aws import AwsCredentials

            creds: Any = AwsCredentials.load(blocks[region])
            return creds.get_boto3_session(), ClientParameters.from_block(creds.aws_client_parameters)
        return boto3.session.Session(profile_name=self.profile, region_name=region), ClientParameters()


@dataclass(frozen=True)
class ClientParameters:
    """A prefect-aws AwsClientParameters as plain values: its endpoint, its botocore config (the options it
    sets, as a dict) and the other client arguments (use_ssl, verify or a CA bundle path, api_version)."""

    endpoint_url: str | None = None
    config: dict[str, Any] | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_block(cls, params: Any) -> ClientParameters:
        """From an AwsClientParameters, through its own get_params_override (verify_cert_path -> verify)."""
        kwargs = {k: v for k, v in params.get_params_override().items() if k not in ("endpoint_url", "config")}
        return cls(endpoint_url=params.endpoint_url, config=dict(params.config or {}) or None, client_kwargs=kwargs)


def configured_endpoint(
    session: botocore.session.Session, service: str, block_config: dict[str, Any] | None = None
) -> str | None:
    """The endpoint botocore itself picks for `service` when a client is made without endpoint_url (None: AWS's).

    botocore's own lookup (the ConfiguredEndpointProvider its Session.create_client installs):
    AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, then the profile's `services` section, then the profile's
    endpoint_url; none of them when ignore_configured_endpoint_urls is true (the client config first, then
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile), as botocore's ClientArgsCreator decides.
    """
    ignore = (block_config or {}).get("ignore_configured_endpoint_urls")
    if ignore is None:
        ignore = session.get_config_variable("ignore_configured_endpoint_urls")
    if ignore:
        return None
    provider = ConfiguredEndpointProvider(
        full_config=session.full_config, scoped_config=session.get_scoped_config(), client_name=service
    )
    found = provider.provide()
    return str(found) if found else None


def endpoint_for(
    session: botocore.session.Session, service: str, ours: str | None, block_config: dict[str, Any] | None = None
) -> str | None:
    """The endpoint a client uses: botocore's configured one, else ours (a block's, the backend's), else AWS's."""
    return configured_endpoint(session, service, block_config) or ours


def client_config(
    max_attempts: int, endpoint_url: str | None, block_config: dict[str, Any] | None = None
) -> botocore.config.Config:
    """Our client config merged with a credentials block's botocore config.

    The block wins for every option it sets; `retries` and `s3` merge key by key, so our standard retry mode and
    max_attempts stay unless the block sets them, and so does path-style addressing, which we choose for a custom
    endpoint only (AWS's own endpoints keep boto3's default, virtual-hosted style).
    """
    block = dict(block_config or {})
    options: dict[str, Any] = {"max_pool_connections": MAX_POOL, "connect_timeout": 10, "read_timeout": 120, **block}
    options["retries"] = {"mode": "standard", "max_attempts": max_attempts, **(block.get("retries") or {})}
    options["s3"] = {**({"addressing_style": "path"} if endpoint_url else {}), **(block.get("s3") or {})}
    if options.get("signature_version") == "unsigned":  # as prefect-aws's get_params_override
        options["signature_version"] = UNSIGNED
    return botocore.config.Config(**options)


_UTC = tzutc()
_ZERO = timedelta(0)


def fast_timestamp(value: Any) -> datetime:
    """botocore's parse_timestamp, with its two common forms read by the standard library first.

    botocore hands every timestamp to dateutil's pure-Python parser: ~0.11 ms each (measured), three per copied object
    (the listings' LastModified, CopyObjectResult's), about a tenth of our client CPU per copy. ISO 8601 with
    a UTC designator (XML/JSON bodies: `2026-12-01T14:35:12.000Z`) and RFC 1123 GMT (headers such as
    Last-Modified) give the very value botocore gives (same instant, its tzutc()); any other form, an epoch
    number or a non-UTC offset goes to botocore's own parser unchanged.
    """
    if isinstance(value, str):
        parsed: datetime | None = None
        try:
            if len(value) >= 20 and value[10] == "T":
                parsed = datetime.fromisoformat(value)
            elif value.endswith(" GMT"):
                parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None and parsed.utcoffset() == _ZERO:
            return parsed.replace(tzinfo=_UTC)
    return parse_timestamp(value)


def describe_endpoints(endpoints: dict[str, str]) -> str:
    """'; endpoints: http://a for s3, http://b for dynamodb, dynamodbstreams' ('' for none), grouped by URL."""
    by_url: dict[str, list[str]] = {}
    for service, url in endpoints.items():
        by_url.setdefault(url, []).append(service)
    if not by_url:
        return ""
    if len(by_url) == 1 and set(endpoints) == set(SERVICES):
        return f"; endpoints: {next(iter(by_url))} for every service"
    return "; endpoints: " + ", ".join(f"{url} for {', '.join(services)}" for url, services in by_url.items())


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
