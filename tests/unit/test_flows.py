"""The flows end to end in-process (moto in-process, the session's one Prefect harness).

Covers what only shows at flow level: the whole migrate DAG reaching GO, writes after the backfill
reaching the target through sync, the sync lock, a NO-GO cutover when the target is wrong, and a task
that fails for good producing exactly one alert on the migration's topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from config.model import EXAMPLE_CONFIG, MigrationConfig, parse_config
from flows.common import RunOptions
from flows.cutover import cutover
from flows.migrate import migrate
from flows.parts import SYNC_LOCK
from flows.sync import sync
from tasks.aws import Backend
from tasks.move import lock
from tasks.names import resource_names
from tasks.steps import step

CONFIG = {
    "sourceRegion": "us-east-1",
    "targetRegion": "eu-west-1",
    "migrationBatch": "flows",
    "timestamp": "20261128",
    "environmentSuffix": "t",
    "s3Buckets": [{"name": "flow-src-bucket", "lifecycleDays": 30}],
    "dynamodbTables": [{"name": "flow-src-table", "scalingFactor": 2}],
}


@pytest.fixture
def migrated(prefect_harness: None, backend: Backend, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Sources with data, a config file, and one completed migrate run."""
    s3 = backend.client("s3", "us-east-1")
    s3.create_bucket(Bucket="flow-src-bucket")
    for i in range(25):
        s3.put_object(Bucket="flow-src-bucket", Key=f"k/{i:02d}", Body=f"v{i}".encode() * 10, Metadata={"i": str(i)})
    ddb = backend.client("dynamodb", "us-east-1")
    ddb.create_table(
        TableName="flow-src-table",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(60):
        ddb.put_item(TableName="flow-src-table", Item={"id": {"S": f"i{i}"}, "n": {"N": str(i)}})
    path = tmp_path / "migration.json"
    path.write_text(json.dumps(CONFIG))
    params = {"options": RunOptions(config_path=str(path), use_aws=True)}
    report = migrate(**params, report_path=str(tmp_path / "report.json"))
    yield {"report": report, "params": params, "cfg": parse_config(CONFIG), "tmp": tmp_path}


def test_migrate_sync_and_cutover(migrated: dict[str, Any], backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    report, params, cfg, tmp = migrated["report"], migrated["params"], migrated["cfg"], migrated["tmp"]
    assert report["verdict"] == {"decision": "GO", "reasons": [], "maxLagSeconds": 60.0}
    assert report["validation"]["passed"] is True
    assert Path(report["validation"]["mismatchFile"]).read_text().strip() == "store,key,kind,detail"
    names = resource_names(cfg)
    target_bucket, target_table = names.buckets["flow-src-bucket"], names.tables["flow-src-table"]
    assert len(backend.client("s3", "eu-west-1").list_objects_v2(Bucket=target_bucket)["Contents"]) == 25
    # The table's backfill ran as groups of segments (one group: 60 items plan one segment).
    fills = [t["backfill"] for t in report["resources"]["dynamodbTables"]]
    assert [(f["segments"], f["taskRuns"], f["written"]) for f in fills] == [(1, 1, 60)]

    # Writes after the migration reach the target through sync (new object, put, update, delete).
    backend.client("s3", "us-east-1").put_object(Bucket="flow-src-bucket", Key="k/new", Body=b"late")
    src = backend.client("dynamodb", "us-east-1")
    src.put_item(TableName="flow-src-table", Item={"id": {"S": "late"}, "n": {"N": "1"}})
    src.delete_item(TableName="flow-src-table", Key={"id": {"S": "i3"}})
    src.put_item(TableName="flow-src-table", Item={"id": {"S": "i4"}, "n": {"S": "now a string"}})
    result = sync(**params, report_path=str(tmp / "sync.json"))
    assert result["copied"] == 1
    assert result["streamRecordsApplied"] == 3
    assert result["ok"] is True
    dst = backend.client("dynamodb", "eu-west-1")
    assert dst.get_item(TableName=target_table, Key={"id": {"S": "i4"}})["Item"]["n"] == {"S": "now a string"}
    assert "Item" not in dst.get_item(TableName=target_table, Key={"id": {"S": "i3"}})

    # Nothing to do: nothing copied or applied.
    again = sync(**params, report_path=str(tmp / "sync.json"))
    assert (again["copied"], again["streamRecordsApplied"]) == (0, 0)

    # A sync while another holds the lock does nothing and says so.
    holder = "someone-else"
    assert lock.acquire(backend, "eu-west-1", names.checkpoint_table, SYNC_LOCK, 600, holder)
    skipped = sync(**params, report_path=str(tmp / "sync.json"))
    assert "another run holds the 'sync' lock" in skipped["skipped"]
    lock.release(backend, "eu-west-1", names.checkpoint_table, SYNC_LOCK, holder)

    # Tampering behind our back: an S3 object's target ETag no longer matches the manifest, so the final
    # catch-up copies it back; a target item changed directly is no stream record, so only validation
    # can see it, and cutover must say NO-GO.
    dst_s3 = backend.client("s3", "eu-west-1")
    dst_s3.put_object(Bucket=target_bucket, Key="k/05", Body=b"X" * 20)
    dst.put_item(TableName=target_table, Item={"id": {"S": "i7"}, "n": {"N": "700"}})
    decision = cutover(**params, report_path=str(tmp / "cutover.json"))
    assert decision["copied"] == 1
    assert dst_s3.get_object(Bucket=target_bucket, Key="k/05")["Body"].read() == b"v5" * 10
    assert decision["verdict"]["decision"] == "NO-GO"
    assert decision["validation"]["mismatches"] == {"missing": 0, "extra": 0, "different": 1, "encryption": 0}
    mismatches = Path(decision["validation"]["mismatchFile"]).read_text().splitlines()
    assert len(mismatches) == 2 and "i7" in mismatches[1] and "different" in mismatches[1]

    # Repaired, cutover says GO and, asked to, removes exactly the source-side changes it made.
    dst.put_item(TableName=target_table, Item={"id": {"S": "i7"}, "n": {"N": "7"}})
    in_task = _watch_cutover_writes(monkeypatch)
    go = cutover(**params, remove_source_changes_on_go=True, report_path=str(tmp / "cutover.json"))
    # The decision's record and the source-side undo are task runs (retried, alerted), not flow-body calls.
    assert in_task == {"record": True, "undo": True}
    assert go["verdict"]["decision"] == "GO", go["verdict"]
    assert {(r["resource"], r["status"]) for r in go["sourceChangesRemoved"]} == {
        ("s3-replication-rule", "removed"),
        ("source-versioning", "suspended"),
        ("source-stream", "disabled"),
    }
    src_s3 = backend.client("s3", "us-east-1")
    assert src_s3.get_bucket_versioning(Bucket="flow-src-bucket")["Status"] == "Suspended"
    with pytest.raises(Exception, match="ReplicationConfigurationNotFound"):
        src_s3.get_bucket_replication(Bucket="flow-src-bucket")
    assert (
        not src.describe_table(TableName="flow-src-table")["Table"].get("StreamSpecification", {}).get("StreamEnabled")
    )
    assert len(src_s3.list_objects_v2(Bucket="flow-src-bucket")["Contents"]) == 26  # source data untouched


def _watch_cutover_writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Note whether cutover's checkpoint record and its teardown actions run inside a Prefect task run."""
    from prefect.context import TaskRunContext

    from tasks import teardown as td
    from tasks.move.checkpoints import CheckpointStore

    seen: dict[str, bool] = {}
    put, execute = CheckpointStore.put, td.execute

    def watched_put(self: CheckpointStore, pk: str, sk: str, attrs: dict[str, Any]) -> None:
        if pk == "cutover":
            seen["record"] = TaskRunContext.get() is not None
        put(self, pk, sk, attrs)

    def watched_execute(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        seen["undo"] = TaskRunContext.get() is not None
        return execute(*args, **kwargs)

    monkeypatch.setattr(CheckpointStore, "put", watched_put)
    monkeypatch.setattr(td, "execute", watched_execute)
    return seen


def test_a_task_failing_for_good_sends_exactly_one_alert(
    prefect_harness: None, backend: Backend, cfg: MigrationConfig
) -> None:
    region = cfg.target_region
    topic = backend.client("sns", region).create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    sqs = backend.client("sqs", region)
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    backend.client("sns", region).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    attempts: list[int] = []

    @step("always-fails", retries=2, delay=0.01, run_name="always-fails-{bucket}")
    def always_fails(bucket: str) -> None:
        attempts.append(1)
        raise RuntimeError(f"copy into {bucket} refused")

    @flow
    def failing(options: RunOptions) -> str:
        """The hook finds the topic from the run's own parameters, as in every flow of the project."""
        state = always_fails(bucket="analytics-raw-data", return_state=True)
        return str(state.type)

    assert failing(RunOptions(config_path=str(EXAMPLE_CONFIG), use_aws=True)) == "StateType.FAILED"
    assert len(attempts) == 3  # the first try and two retries
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["Subject"] == "region-migration batch-001: task always-fails failed"
    assert "always-fails-analytics-raw-data" in body["Message"]
    assert "copy into analytics-raw-data refused" in body["Message"]
    assert "testing" not in body["Message"]  # no credentials in alerts


def test_a_failing_flow_alerts_for_its_submitted_task_and_itself(
    prefect_harness: None, backend: Backend, cfg: MigrationConfig
) -> None:
    """A task in the runner's threads, the flow body (a NO-GO alert) and the flow's own hook all find the topic
    from the run's options."""
    from tasks import alerts

    region = cfg.target_region
    topic = backend.client("sns", region).create_topic(Name=resource_names(cfg).topic)["TopicArn"]
    sqs = backend.client("sqs", region)
    queue = sqs.create_queue(QueueName="flow-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    backend.client("sns", region).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    @step("fails-in-a-thread", retries=0, run_name="fails-in-a-thread-{table}")
    def fails(table: str) -> None:
        raise RuntimeError(f"scan of {table} refused")

    @flow(name="test-failing-flow", on_failure=[alerts.on_flow_failure])
    def failing_flow(options: RunOptions) -> None:
        fails.submit(table="analytics-events").wait()
        assert alerts.publish("region-migration batch-001: NO-GO", "analytics-events: 3 mismatches")
        raise RuntimeError("the run gives up")

    state = failing_flow(RunOptions(config_path=str(EXAMPLE_CONFIG), use_aws=True), return_state=True)

    assert state.is_failed()
    got: list[dict[str, Any]] = []
    for _ in range(5):
        resp = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        got += [json.loads(m["Body"]) for m in resp.get("Messages", [])]
        if len(got) >= 3:
            break
    subjects = sorted(m["Subject"] for m in got)
    assert subjects == [
        "region-migration batch-001: NO-GO",
        "region-migration batch-001: flow test-failing-flow failed",
        "region-migration batch-001: task fails-in-a-thread failed",
    ]
    flow_alert = next(m for m in got if ": flow " in m["Subject"])
    assert "the run gives up" in flow_alert["Message"]
