"""Endpoints as botocore configures them (environment, the profile's `services` section) win over ours; client
settings from a credentials block's AwsClientParameters merge with ours. No AWS call: clients are only built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from prefect_aws import AwsClientParameters

from tasks.aws import SERVICES, Backend, ClientParameters, clear_client_cache, client_config, describe_endpoints

OURS = "http://127.0.0.1:9"
S3_ELSEWHERE = "http://s3.example.test:4566"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No endpoint setting from the machine: an empty config file, no AWS_ENDPOINT_URL* variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    clear_client_cache()
    yield
    clear_client_cache()


def _config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))


def _addressing(client: Any) -> str | None:
    return (client.meta.config.s3 or {}).get("addressing_style")


def test_a_service_variable_wins_over_the_backend_endpoint_for_that_service_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", S3_ELSEWHERE)
    backend = Backend(kind="endpoint", endpoint_url=OURS)
    s3, ddb = backend.client("s3", "eu-west-1"), backend.client("dynamodb", "eu-west-1")
    assert (s3.meta.endpoint_url, ddb.meta.endpoint_url) == (S3_ELSEWHERE, OURS)
    assert _addressing(s3) == "path"


def test_the_global_variable_reaches_an_endpoint_backend_and_streams_use_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://all.example.test:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://streams.example.test:2")
    backend = Backend(kind="endpoint", endpoint_url=OURS)
    assert backend.client("dynamodb", "us-east-1").meta.endpoint_url == "http://all.example.test:1"
    assert backend.client("dynamodbstreams", "us-east-1").meta.endpoint_url == "http://streams.example.test:2"


def test_the_embedded_emulator_is_never_sent_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` on a machine set up for another emulator still talks to the server it started."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://all.example.test:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", S3_ELSEWHERE)
    backend = Backend(kind="emulator", endpoint_url=OURS)
    assert {backend.client(s, "us-east-1").meta.endpoint_url for s in ("s3", "dynamodb")} == {OURS}
    assert backend.describe() == f"emulator ({OURS})"


def test_a_configured_endpoint_on_aws_chooses_path_style(monkeypatch: pytest.MonkeyPatch) -> None:
    """On --aws, botocore already honoured the variable; the addressing style must follow the endpoint used."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", S3_ELSEWHERE)
    s3 = Backend(kind="aws").client("s3", "us-east-1")
    assert (s3.meta.endpoint_url, _addressing(s3)) == (S3_ELSEWHERE, "path")


def test_aws_own_endpoint_keeps_virtual_hosted_style() -> None:
    s3 = Backend(kind="aws").client("s3", "eu-west-1")
    assert s3.meta.endpoint_url.endswith(".amazonaws.com")
    assert _addressing(s3) is None


def test_the_profile_services_section_wins_over_the_backend_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _config_file(
        monkeypatch,
        tmp_path,
        "[default]\nservices = local\n\n[services local]\ndynamodb =\n  endpoint_url = http://ddb.example.test:8000\n",
    )
    backend = Backend(kind="endpoint", endpoint_url=OURS)
    assert backend.client("dynamodb", "us-east-1").meta.endpoint_url == "http://ddb.example.test:8000"
    assert backend.client("s3", "us-east-1").meta.endpoint_url == OURS


def test_a_named_profile_services_section_on_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _config_file(
        monkeypatch,
        tmp_path,
        "[profile mig]\nservices = local\naws_access_key_id = a\naws_secret_access_key = b\n\n"
        "[services local]\ns3 =\n  endpoint_url = http://s3.example.test:9000\n",
    )
    s3 = Backend(kind="aws", profile="mig").client("s3", "us-east-1")
    assert (s3.meta.endpoint_url, _addressing(s3)) == ("http://s3.example.test:9000", "path")


def test_ignore_configured_endpoint_urls_keeps_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", S3_ELSEWHERE)
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    backend = Backend(kind="endpoint", endpoint_url=OURS)
    assert backend.client("s3", "us-east-1").meta.endpoint_url == OURS
    assert "endpoints:" not in backend.describe()


def test_describe_names_each_service_configured_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Backend(kind="endpoint", endpoint_url=OURS).describe() == f"endpoint ({OURS})"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", S3_ELSEWHERE)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://ddb.example.test:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://ddb.example.test:1")
    assert Backend(kind="endpoint", endpoint_url=OURS).describe() == (
        f"endpoint ({OURS}); endpoints: {S3_ELSEWHERE} for s3, http://ddb.example.test:1 for dynamodb, dynamodbstreams"
    )
    assert Backend(kind="aws").describe() == (
        f"aws (default credential chain); endpoints: {S3_ELSEWHERE} for s3, "
        "http://ddb.example.test:1 for dynamodb, dynamodbstreams"
    )


def test_describe_survives_a_missing_profile() -> None:
    assert Backend(kind="aws", profile="no-such-profile").describe() == "aws (profile no-such-profile)"


def test_describe_endpoints_groups_services_by_url() -> None:
    assert describe_endpoints({}) == ""
    assert describe_endpoints({"s3": "http://a", "kms": "http://b", "sns": "http://a"}) == (
        "; endpoints: http://a for s3, sns, http://b for kms"
    )
    assert describe_endpoints(dict.fromkeys(SERVICES, "http://a")) == "; endpoints: http://a for every service"


# ------------------------------------------------------------------ client settings (pure)


def test_client_config_keeps_ours_where_the_block_sets_nothing() -> None:
    cfg = client_config(8, OURS)
    assert cfg.retries == {"mode": "standard", "max_attempts": 8}
    assert (cfg.connect_timeout, cfg.read_timeout, cfg.max_pool_connections) == (10, 120, 64)
    assert cfg.s3 == {"addressing_style": "path"}
    assert client_config(8, None).s3 == {}


def test_client_config_lets_the_block_win_for_what_it_sets() -> None:
    block = {"connect_timeout": 3, "retries": {"max_attempts": 4}, "s3": {"use_accelerate_endpoint": False}}
    cfg = client_config(8, OURS, block)
    assert cfg.connect_timeout == 3 and cfg.read_timeout == 120
    assert cfg.retries == {"mode": "standard", "max_attempts": 4}
    assert cfg.s3 == {"addressing_style": "path", "use_accelerate_endpoint": False}
    assert client_config(8, OURS, {"retries": {"mode": "adaptive"}}).retries == {"mode": "adaptive", "max_attempts": 8}
    assert client_config(8, None, {"signature_version": "unsigned"}).signature_version is UNSIGNED


def test_client_parameters_from_a_block_keep_verify_bundle_ssl_and_api_version(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    params = ClientParameters.from_block(
        AwsClientParameters(
            verify_cert_path=bundle, use_ssl=False, api_version="2012-08-10", config={"connect_timeout": 2}
        )
    )
    assert params.client_kwargs == {"verify": bundle, "use_ssl": False, "api_version": "2012-08-10"}
    assert (params.endpoint_url, params.config) == (None, {"connect_timeout": 2})
    assert ClientParameters.from_block(AwsClientParameters(verify=False)).client_kwargs == {
        "use_ssl": True,
        "verify": False,
    }
