"""The emulators of the end-to-end tests (a moto server; MiniStack, the second one) and a small seeded source."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Built by `make ministack` (a dependency of `make test`): MiniStack pins botocore exactly, so it has its own venv.
MINISTACK_BIN = ROOT / ".venv-ministack" / "bin" / "ministack"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server per module, starting and leaving empty: moto's state is process-wide (every server
    and mock in this pytest process shares it), so each module resets it rather than trusting a new port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    _reset(url)
    yield url
    _reset(url)
    server.stop()


def _ministack_answers(url: str, path: str, method: str = "GET") -> bool:
    try:
        req = urllib.request.Request(f"{url}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def ministack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MiniStack per session on a free loopback port, its state dir private to the session. A missing
    binary fails loudly: CI runs `make test`, which builds it, so a skip would hide a broken setup."""
    if not MINISTACK_BIN.exists():
        raise RuntimeError(f"{MINISTACK_BIN} not found: run `make ministack` (part of `make test`) to build it")
    state = tmp_path_factory.mktemp("ministack")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_", "PYTHON"))}
    env.update(GATEWAY_PORT=str(port), BIND_HOST="127.0.0.1", STATE_DIR=str(state / "state"), PERSIST_STATE="0")
    log_path = state / "ministack.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [str(MINISTACK_BIN)],
            env=env,
            cwd=state,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its Lambda workers are its children: one group to end at teardown
        )
    try:
        deadline = time.monotonic() + 60
        while not _ministack_answers(url, "/_ministack/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MiniStack did not answer {url}/_ministack/health; its log ends:\n{tail}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def ministack_url(ministack_server: str) -> Iterator[str]:
    """The session's MiniStack, empty at the start and the end of each module that uses it."""
    assert _ministack_answers(ministack_server, "/_ministack/reset", method="POST"), "MiniStack reset failed"
    yield ministack_server
    _ministack_answers(ministack_server, "/_ministack/reset", method="POST")


@pytest.fixture(scope="module")
def cli_env(prefect_harness: None) -> dict[str, str]:
    """The subprocess environment: emulator credentials and the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture(scope="module")
def seeded_config(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source bucket (40 objects) and table (150 items) in us-east-1, and a config naming them."""
    kw = {
        "endpoint_url": moto_url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": "us-east-1",
    }
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="e2e-bucket")
    for i in range(40):
        s3.put_object(
            Bucket="e2e-bucket",
            Key=f"data/{i:03d} é+%.txt",
            Body=f"object {i}".encode() * (i + 1),
            ContentType="text/plain",
            Metadata={"i": str(i)},
        )
    ddb = boto3.client("dynamodb", **kw)
    ddb.create_table(
        TableName="e2e-table",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        ProvisionedThroughput={"ReadCapacityUnits": 4, "WriteCapacityUnits": 3},
    )
    for i in range(150):
        ddb.put_item(
            TableName="e2e-table",
            Item={
                "pk": {"S": f"p{i % 10}"},
                "sk": {"N": str(i)},
                "n": {"N": "3.14159265358979323846264338327950288"},
                "m": {"M": {"l": {"L": [{"S": ""}, {"BOOL": True}]}}},
                "ss": {"SS": ["a", "b"]},
            },
        )
    cfg = {
        "sourceRegion": "us-east-1",
        "targetRegion": "eu-west-1",
        "migrationBatch": "e2e",
        "timestamp": "20261128",
        "environmentSuffix": "e2e",
        "s3Buckets": [{"name": "e2e-bucket", "versioning": True, "lifecycleDays": 30}],
        "dynamodbTables": [
            {
                "name": "e2e-table",
                "hashKey": "pk",
                "hashKeyType": "S",
                "rangeKey": "sk",
                "rangeKeyType": "N",
                "readCapacity": 4,
                "writeCapacity": 3,
                "scalingFactor": 1.5,
            }
        ],
    }
    path = tmp_path_factory.mktemp("cfg") / "migration.json"
    path.write_text(json.dumps(cfg))
    return path
