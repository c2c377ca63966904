"""Shared fixtures: moto in-process for unit tests, one Prefect harness for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

from moto import mock_aws

from config.model import EXAMPLE_CONFIG, MigrationConfig, load_config
from tasks.aws import Backend, clear_client_cache

SOURCE = "us-east-1"
TARGET = "eu-west-1"


@pytest.fixture
def backend() -> Iterator[Backend]:
    """A Backend whose calls land in a fresh in-process moto (same code path as the server)."""
    clear_client_cache()
    with mock_aws():
        yield Backend(kind="emulator")
    clear_client_cache()


@pytest.fixture
def cfg() -> MigrationConfig:
    """The shipped example config (us-east-1 -> eu-west-1)."""
    return load_config(EXAMPLE_CONFIG)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """ONE Prefect test server for the whole session (it takes ~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
