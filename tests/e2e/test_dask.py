"""End to end on Dask: the real CLI with `--task-runner dask` (a LocalCluster of 2 worker processes) migrates to GO;
a run whose Dask worker is killed (SIGKILL) in the middle of the backfill still ends GO, nothing lost or duplicated;
and a step that fails inside a Dask worker process still sends its alert. The runs share one moto server and the
session's Prefect server (a Dask worker must reach a Prefect API: a temporary server per process cannot serve)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from prefect import flow

from config.options import RunOptions
from tasks.steps import step
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

OBJECTS = 1000  # enough copying time for the kill to land mid-backfill on a quiet machine too
ITEMS = 1000
BUCKET, TABLE = "dask-bucket", "dask-table"
CAPTURED: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 240, "check": False}
KILL_AT = 60  # objects in the target when the worker copying them is killed (past the first manifest flush, 25)


def _client(service: str, url: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=region,
    )


@pytest.fixture(scope="module")
def source(moto_url: str) -> str:
    """One source bucket (600 small objects under four prefixes) and table (1,000 items), shared by the runs."""
    s3, ddb = _client("s3", moto_url, "us-east-1"), _client("dynamodb", moto_url, "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for i in range(OBJECTS):
        s3.put_object(Bucket=BUCKET, Key=f"p{i % 4}/{i:04d}", Body=f"body {i}".encode() * 10)
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, ITEMS, 25):
        ddb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"id": {"S": f"i{i:05d}"}, "v": {"N": str(i)}}}}
                    for i in range(start, start + 25)
                ]
            }
        )
    return moto_url


def _config(tmp_path: Path, suffix: str) -> Path:
    cfg = {
        "sourceRegion": "us-east-1",
        "targetRegion": "eu-west-1",
        "migrationBatch": "dask",
        "timestamp": "20261201",
        "environmentSuffix": suffix,
        "s3Buckets": [{"name": BUCKET}],
        "dynamodbTables": [{"name": TABLE}],
    }
    path = tmp_path / f"{suffix}.json"
    path.write_text(json.dumps(cfg))
    return path


def _args(config: Path, url: str, report: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows.migrate",
        "--task-runner",
        "dask",
        "--dask-workers",
        "2",
        "--config",
        str(config),
        "--endpoint-url",
        url,
        "--report",
        str(report),
    ]


def _listing(url: str, bucket: str) -> tuple[list[str], dict[str, int]]:
    """Every key of the target's listing (duplicates kept) and how many versions each key has."""
    s3 = _client("s3", url, "eu-west-1")
    keys = [
        o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])
    ]
    versions: dict[str, int] = {}
    for p in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in p.get("Versions", []):
            versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    return keys, versions


def _check_target(url: str, suffix: str) -> None:
    """Every source object in the target once, with the same content; every item once."""
    bucket, table = f"{BUCKET}-eu-20261201-{suffix}", f"{TABLE}-eu-20261201-{suffix}"
    keys, _ = _listing(url, bucket)
    assert len(keys) == len(set(keys)) == OBJECTS
    src, dst = _client("s3", url, "us-east-1"), _client("s3", url, "eu-west-1")
    for key in sorted(keys)[:: OBJECTS // 30]:  # a sample of contents; validation compared every one
        assert (
            dst.get_object(Bucket=bucket, Key=key)["Body"].read()
            == src.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        )
    ddb = _client("dynamodb", url, "eu-west-1")
    ids = [
        item["id"]["S"]
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        for item in page["Items"]
    ]
    assert len(ids) == len(set(ids)) == ITEMS


def test_migrate_on_a_two_process_dask_cluster_ends_go(source: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = subprocess.run(_args(_config(tmp_path, "d1"), source, report), cwd=ROOT, env=cli_env, **CAPTURED)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "verdict: GO" in run.stdout
    assert "Creating a new Dask cluster with `distributed.deploy.local.LocalCluster`" in run.stdout + run.stderr
    result = json.loads(report.read_text())
    assert result["verdict"]["decision"] == "GO"
    assert result["resources"]["s3Buckets"][0]["backfill"]["copied"] == OBJECTS
    _check_target(source, "d1")


def _scheduler(cli: psutil.Process) -> Any:
    """A Dask client of the CLI's own scheduler (the LocalCluster's scheduler listens on a loopback port of the CLI
    process), or None while there is none."""
    from distributed import Client

    for conn in cli.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or _speaks_http(conn.laddr.port):
            continue  # the dashboard: a Dask client would wait out its whole timeout there
        try:
            return Client(f"tcp://127.0.0.1:{conn.laddr.port}", timeout=5, set_as_default=False)
        except Exception:
            continue  # another listener: not a scheduler
    return None


def _speaks_http(port: int) -> bool:
    """Whether a loopback port answers an HTTP request (Dask's dashboard does; its scheduler does not)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(4).startswith(b"HTTP")
    except OSError:
        return False


def _copying_worker(client: Any) -> int | None:
    """The pid of the Dask worker running an S3 copy task (None until one runs), asked of the scheduler."""
    for addr, keys in client.processing().items():
        if any(str(k).startswith("copy_partition") for k in keys):
            return int(client.run(os.getpid, workers=[addr])[addr])
    return None


def test_a_dask_worker_killed_mid_backfill_still_ends_go_with_nothing_lost_or_twice(
    source: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    target_bucket = f"{BUCKET}-eu-20261201-d2"
    target_s3 = _client("s3", source, "eu-west-1")
    log = (tmp_path / "cli.log").open("w")  # a file, not a pipe: the loop below does not read while it runs
    proc = subprocess.Popen(
        _args(_config(tmp_path, "d2"), source, report),
        cwd=ROOT,
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    killed, copied_at_kill, client = None, 0, None
    deadline = time.monotonic() + 180
    try:
        cli = psutil.Process(proc.pid)
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                copied_at_kill = target_s3.list_objects_v2(Bucket=target_bucket).get("KeyCount", 0)
            except Exception:
                copied_at_kill = 0
            client = client or _scheduler(cli)
            if client is not None and copied_at_kill >= KILL_AT:
                killed = _copying_worker(client)
                if killed is not None:
                    psutil.Process(killed).kill()  # SIGKILL
            time.sleep(0.05)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        if client is not None:
            client.close()
    out = (tmp_path / "cli.log").read_text()
    assert killed is not None, "a Dask worker must be killed during the run"
    assert KILL_AT <= copied_at_kill < OBJECTS, "the kill must land in the middle of the S3 backfill"
    assert proc.returncode == 0, out[-4000:]
    result = json.loads(report.read_text())
    assert result["verdict"]["decision"] == "GO"
    assert result["validation"]["mismatches"] == {"missing": 0, "extra": 0, "different": 0, "encryption": 0}
    _check_target(source, "d2")
    backfill = result["resources"]["s3Buckets"][0]["backfill"]
    _, versions = _listing(source, target_bucket)
    recopied = sum(n - 1 for n in versions.values())
    # A task the dead worker held ran again: what it had recorded is skipped, a copy made again (a new version of the
    # same content, not a duplicate) is counted as copied.
    assert backfill["seen"] == OBJECTS
    assert backfill["skipped"] > 0, "the re-run task resumes from the dead worker's checkpoint"
    assert backfill["copied"] + backfill["skipped"] == OBJECTS
    assert recopied <= backfill["copied"]
    print(f"killed worker {killed} at {copied_at_kill} objects; report {backfill}; {recopied} re-copied versions")


def _fail_in_a_worker() -> None:
    raise RuntimeError(f"probe failure in process {os.getpid()}")


# A step like every other (tasks/steps.py: the alert hook on final failure), at module level so a worker imports it.
alert_probe = step("dask-alert-probe", retries=0)(_fail_in_a_worker)


@flow
def _alerting(options: RunOptions) -> bool:
    probe = alert_probe.submit()
    probe.wait()
    return probe.state.is_failed()


def test_a_step_failing_in_a_dask_worker_process_alerts_the_runs_topic(
    source: str, prefect_harness: None, tmp_path: Path
) -> None:
    """The alert target comes from the flow run's `options`, read where the hook runs: inside the worker process."""
    from prefect_dask import DaskTaskRunner

    from config.model import load_config
    from tasks.names import alert_topic_arn

    config = _config(tmp_path, "al")
    topic_arn = alert_topic_arn(load_config(config), "123456789012")
    sns, sqs = _client("sns", source, "eu-west-1"), _client("sqs", source, "eu-west-1")
    topic = sns.create_topic(Name=topic_arn.rsplit(":", 1)[1])["TopicArn"]
    queue = sqs.create_queue(QueueName="dask-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": True, "threads_per_worker": 1})
    assert _alerting.with_options(task_runner=runner)(options=RunOptions(config_path=str(config), endpoint_url=source))
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    alert = next(b for b in bodies if "dask-alert-probe" in b.get("Subject", ""))
    failed_in = int(alert["Message"].rsplit("probe failure in process ", 1)[1].split()[0].strip("'\"."))
    assert failed_in != os.getpid(), "the step must have failed in a worker process, not in this one"
