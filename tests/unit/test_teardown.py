"""Teardown: a realistic migrated state built by the real provisioning and movement functions (moto in-process),
plus foreign look-alikes; teardown must remove exactly ours, keep data unless told, and touch no source data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.model import EXAMPLE_CONFIG, MigrationConfig, parse_config
from tasks import teardown as td
from tasks.aws import Backend, tag_list
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.s3_plan import replication_rule_id
from tasks.move.s3_replication import ensure_replication
from tasks.names import resource_names
from tasks.provision import cloudwatch, dynamodb, iam, kms, lambda_, s3, sns
from tasks.report.render import teardown_plan_text
from tests.conftest import SOURCE, TARGET
from tests.ddb_helpers import move_table
from tests.s3_bucket import copy_bucket

RAW, PROCESSED, SHARED = "analytics-raw-data", "analytics-processed", "shared-logs"
EVENTS, USERS, SESSIONS = "analytics-events", "analytics-users", "shared-sessions"
PARTNER = "partner-archive"
FOREIGN_RULE = "partner-archive-rule"


@pytest.fixture
def cfg(cfg: MigrationConfig) -> MigrationConfig:
    """The example config plus one bucket and one table whose target names someone else already took."""
    data = cfg.model_dump()
    data["s3Buckets"].append({"name": SHARED})
    data["dynamodbTables"].append({"name": SESSIONS})
    return parse_config(data)


# ---------------------------------------------------------------- building the migrated state


def _source_data(backend: Backend) -> None:
    s3c = backend.client("s3", SOURCE)
    for bucket in (RAW, PROCESSED, SHARED, PARTNER):
        s3c.create_bucket(Bucket=bucket)
    # processed: versioning on before the migration, with someone else's replication rule
    for bucket in (PROCESSED, PARTNER):
        s3c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3c.put_bucket_replication(
        Bucket=PROCESSED,
        ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/partner-replication",
            "Rules": [
                {
                    "ID": FOREIGN_RULE,
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {"Prefix": "exports/"},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": f"arn:aws:s3:::{PARTNER}"},
                }
            ],
        },
    )
    for bucket in (RAW, PROCESSED, SHARED):
        for i in range(12):
            s3c.put_object(
                Bucket=bucket,
                Key=f"exports/part-{i:03d}.json",
                Body=json.dumps({"i": i}).encode(),
                ContentType="application/json",
                Metadata={"origin": bucket},
                Tagging="tier=gold",
            )
        s3c.put_object(Bucket=bucket, Key="bin/blob", Body=bytes(range(256)) * 40)

    ddb = backend.client("dynamodb", SOURCE)
    ddb.create_table(
        TableName=EVENTS,
        KeySchema=[{"AttributeName": "eventId", "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "eventId", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "N"},
        ],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    # users: a stream of its own before the migration (not ours to disable)
    ddb.create_table(
        TableName=USERS,
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    ddb.create_table(
        TableName=SESSIONS,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(30):
        ddb.put_item(
            TableName=EVENTS,
            Item={
                "eventId": {"S": f"e{i}"},
                "timestamp": {"N": str(1700000000 + i)},
                "payload": {"B": bytes([i]) * 9},
                "n": {"N": "1.50"},
            },
        )
        ddb.put_item(
            TableName=USERS,
            Item={
                "userId": {"S": f"u{i}"},
                "tags": {"SS": ["a", "b"]},
                "m": {"M": {"x": {"L": [{"S": ""}, {"NULL": True}]}}},
            },
        )
        ddb.put_item(TableName=SESSIONS, Item={"id": {"S": f"s{i}"}})


def _foreign(backend: Backend, cfg: MigrationConfig) -> dict[str, str]:
    """Look-alikes: our exact target names (for the config entries never migrated) or our alarm prefix, untagged."""
    names = resource_names(cfg)
    bucket, table = names.buckets[SHARED], names.tables[SESSIONS]
    s3t = backend.client("s3", TARGET)
    s3t.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": TARGET})
    s3t.put_object(Bucket=bucket, Key="theirs.txt", Body=b"theirs")
    ddb = backend.client("dynamodb", TARGET)
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"id": {"S": "theirs"}})
    alarm = cloudwatch.alarm_prefix(cfg) + "custom-theirs"
    backend.client("cloudwatch", TARGET).put_metric_alarm(
        AlarmName=alarm,
        Namespace="Custom",
        MetricName="M",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    # same batch, other environment: tagged, but not ours
    other = backend.client("cloudwatch", TARGET)
    other_alarm = cloudwatch.alarm_prefix(cfg) + "other-env"
    other.put_metric_alarm(
        AlarmName=other_alarm,
        Namespace="Custom",
        MetricName="M",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=tag_list({**cfg.tags(), "Environment": "qa"}),
    )
    return {"bucket": bucket, "table": table, "alarm": alarm, "otherAlarm": other_alarm}


def _migrate(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Provision and move RAW, PROCESSED, EVENTS and USERS with the project's own functions."""
    names = resource_names(cfg)
    account = backend.account_id(TARGET)
    key = kms.ensure_key.fn(backend, cfg, account)["arn"]
    for spec in cfg.s3_buckets:
        if spec.name != SHARED:
            s3.ensure_bucket.fn(backend, cfg, spec, key)
    for tspec in cfg.dynamodb_tables:
        if tspec.name != SESSIONS:
            dynamodb.ensure_table.fn(backend, cfg, tspec, key)
    topic = sns.ensure_topic.fn(backend, cfg, key)["arn"]
    ensure_checkpoint_table.fn(backend, TARGET, names.checkpoint_table, cfg.tags(), key)
    repl_role = iam.ensure_replication_role.fn(backend, cfg, key)["arn"]
    lam_role = iam.ensure_lambda_role.fn(backend, cfg, key, topic)["arn"]
    lambda_.ensure_validator.fn(backend, cfg, lam_role, topic, key)
    alarms = cloudwatch.ensure_alarms(backend, cfg, topic, replication_rule_id(cfg))
    cloudwatch.ensure_dashboard(backend, cfg, replication_rule_id(cfg))
    replication = {}
    for source in (RAW, PROCESSED):
        # The S3 move records the source's versioning before it changes it (teardown's evidence).
        replication[source] = ensure_replication.fn(
            backend, cfg, source, names.buckets[source], repl_role, key, checkpoint_table=names.checkpoint_table
        )
        copy_bucket(backend, cfg, source, names.buckets[source], key, names.checkpoint_table)
    streams = {}
    for source in (EVENTS, USERS):
        streams[source] = move_table(backend, cfg, source, names.tables[source], names.checkpoint_table)["stream"]
    return {"key": key, "topic": topic, "alarms": alarms, "replication": replication, "streams": streams}


def _snapshot(backend: Backend) -> dict[str, Any]:
    """Every source object version (bytes, metadata, tags) and every source item, exactly."""
    s3c = backend.client("s3", SOURCE)
    out: dict[str, Any] = {}
    for bucket in (RAW, PROCESSED, SHARED):
        versions = []
        for page in s3c.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []):
                obj = s3c.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                tags = s3c.get_object_tagging(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["TagSet"]
                versions.append(
                    (v["Key"], v["VersionId"], obj["Body"].read(), obj["ContentType"], obj["Metadata"], tags)
                )
            assert not page.get("DeleteMarkers")
        out[bucket] = sorted(versions, key=lambda x: (x[0], x[1]))
    ddb = backend.client("dynamodb", SOURCE)
    for table in (EVENTS, USERS, SESSIONS):
        items = [it for page in ddb.get_paginator("scan").paginate(TableName=table) for it in page["Items"]]
        out[table] = sorted(json.dumps(it, sort_keys=True, default=repr) for it in items)
    return out


@pytest.fixture
def state(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    _source_data(backend)
    foreign = _foreign(backend, cfg)
    moved = _migrate(backend, cfg)
    return {"foreign": foreign, "moved": moved, "before": _snapshot(backend)}


def _by(plan: list[dict[str, Any]], resource: str) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in plan if a["resource"] == resource}


def _tagged(backend: Backend, cfg: MigrationConfig) -> list[str]:
    """ARNs still carrying our tags (Resource Groups Tagging API, both regions; IAM is not in it)."""
    filters = [{"Key": k, "Values": [v]} for k, v in cfg.tags().items()]
    arns: set[str] = set()
    for region in (SOURCE, TARGET):
        api = backend.client("resourcegroupstaggingapi", region)
        for page in api.get_paginator("get_resources").paginate(TagFilters=filters):
            arns.update(r["ResourceARN"] for r in page["ResourceTagMappingList"])
    return sorted(arns)


# ---------------------------------------------------------------- pure


def test_versioning_evidence_and_report(tmp_path: Path, cfg: MigrationConfig) -> None:
    assert td.versioning_evidence({"versioningBefore": "Disabled"}, None)[0] is True
    assert td.versioning_evidence({"versioningBefore": "Enabled"}, {"versioningBefore": "Disabled"})[0] is False
    assert td.versioning_evidence(None, {"versioningBefore": "Suspended"})[0] is True
    # a re-run's report says Enabled because the first run enabled it: proves nothing
    assert td.versioning_evidence(None, {"versioningBefore": "Enabled"})[0] is None
    assert td.versioning_evidence(None, None)[0] is None
    report = {
        "migrationBatch": cfg.migration_batch,
        "environmentSuffix": cfg.environment_suffix,
        "resources": {"s3Buckets": [{"replication": {"bucket": RAW, "versioningBefore": "Disabled"}}]},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert td.report_replications(path, cfg)[RAW]["versioningBefore"] == "Disabled"
    path.write_text(json.dumps(report | {"environmentSuffix": "prod"}))
    assert td.report_replications(path, cfg) == {}
    assert td.report_replications(tmp_path / "missing.json", cfg) == {}


def test_plan_order_and_data_flags(cfg: MigrationConfig) -> None:
    found: dict[str, Any] = {
        "replicationRules": [{"name": RAW, "region": SOURCE, "ruleId": "r", "otherRules": []}],
        "sourceVersioning": [
            {"name": RAW, "region": SOURCE, "status": "Enabled", "enabledByUs": True, "evidence": "e", "otherRules": []}
        ],
        "sourceStreams": [
            {"name": EVENTS, "region": SOURCE, "streamArn": "s", "recordedArn": "s", "enabledByUs": True}
        ],
        "targetBuckets": [
            {
                "name": "b",
                "region": TARGET,
                "owned": True,
                "hasData": True,
                "objectVersions": 3,
                "deleteMarkers": 0,
                "countCapped": False,
            },
            {"name": "f", "region": TARGET, "owned": False},
        ],
        "targetTables": [{"name": "t", "region": TARGET, "owned": True, "hasData": False, "itemCount": 0}],
        "checkpointTable": {"name": "c", "region": TARGET, "owned": True},
        "kmsKey": {
            "name": "alias/k",
            "keyId": "k",
            "arn": "arn:k",
            "region": TARGET,
            "state": "Enabled",
            "aliasExists": True,
            "owned": True,
        },
        "alarms": [],
        "roles": [],
    }
    plan = td.teardown_plan(cfg, found)
    assert [a["action"] for a in plan] == [
        "delete-replication-configuration",
        "suspend-versioning",
        "disable-stream",
        "empty-and-delete",
        "skip",
        "delete",
        "delete",
        "delete-alias",
        "schedule-key-deletion",
    ]
    assert [a["phase"] for a in plan] == ["source"] * 3 + ["target"] * 3 + ["final"] * 3
    assert _by(plan, "s3-bucket")["b"]["destroysData"] is True
    assert _by(plan, "dynamodb-table")["t"]["destroysData"] is False
    assert _by(plan, "kms-key")["alias/k"]["destroysData"] is True  # data would remain encrypted with it
    assert "cannot be disabled" in _by(plan, "source-versioning")[RAW]["reason"]
    pending = found | {"kmsKey": found["kmsKey"] | {"state": "PendingDeletion", "aliasExists": False}}
    assert not _by(td.teardown_plan(cfg, pending), "kms-key")


def _everything(owned: bool = True) -> dict[str, Any]:
    """A discovery result holding one of every kind teardown knows (pure: no AWS)."""

    def res(name: str, region: str = TARGET, **extra: Any) -> dict[str, Any]:
        return {"name": name, "region": region, "arn": f"arn:{name}", "owned": owned, **extra}

    key = {"keyId": "k", "state": "Enabled", "aliasExists": True}
    return {
        "replicationRules": [{"name": RAW, "region": SOURCE, "ruleId": "r", "otherRules": ["theirs"]}],
        "sourceVersioning": [
            {"name": RAW, "region": SOURCE, "status": "Enabled", "enabledByUs": True, "evidence": "e", "otherRules": []}
        ],
        "sourceStreams": [
            {"name": EVENTS, "region": SOURCE, "streamArn": "s", "recordedArn": "s", "enabledByUs": True}
        ],
        "sourcePitr": [{"name": EVENTS, "region": SOURCE, "enabledAt": "t"}],
        "stagingBucket": res("stage"),
        "alarms": [res("alarm")],
        "dashboard": res("dash"),
        "lambda": res("fn"),
        "logGroup": res("/aws/lambda/fn"),
        "roles": [res("role", "global")],
        "topic": res("topic"),
        "targetBuckets": [res("b", hasData=False, objectVersions=0, deleteMarkers=0, countCapped=False)],
        "targetTables": [res("t", hasData=False, itemCount=0)],
        "checkpointTable": res("c"),
        "kmsKey": res("alias/k", **key),
        "sourceTopic": res("src-topic", SOURCE),
        "sourceKmsKey": res("alias/src", SOURCE, **key),
        "reportsBucket": res("reports", SOURCE),
    }


def test_every_planned_change_has_exactly_one_delete_in_the_table(cfg: MigrationConfig) -> None:
    plan = td.teardown_plan(cfg, _everything())
    kinds = {a["resource"] for a in td.changes(plan)}
    assert kinds == set(td.DELETES)  # every kind a plan can change has a delete, and the table has no stale kind
    assert {a["action"] for a in td.changes(plan)} <= td.CHANGE_ACTIONS
    assert _by(plan, "s3-replication-rule")[RAW]["action"] == "remove-replication-rule"  # another rule is kept
    foreign = td.teardown_plan(cfg, _everything(owned=False))
    assert {a["resource"] for a in td.changes(foreign)} == {
        "s3-replication-rule",
        "source-versioning",
        "source-stream",
        "source-pitr",
    }  # nothing of the target side is touched when no tag says it is ours


def test_guard_decides_from_the_plan_and_results_alone() -> None:
    def act(resource: str, action: str = "delete", phase: str = "final") -> dict[str, Any]:
        return {"phase": phase, "resource": resource, "name": resource, "region": TARGET, "action": action}

    assert td.guard(act("s3-bucket", "skip"), []) == {"status": td.SKIPPED}
    assert td.guard(act("source-versioning", "keep") | {"reason": "why"}, []) == {"status": "kept (why)"}
    failed_source = act("source-stream", "disable-stream", "source") | {"status": td.FAILED}
    kept = td.guard(act("checkpoint-table"), [failed_source])
    assert kept is not None and kept["status"].startswith("kept (source changes not undone yet: source-stream")
    assert td.guard(act("checkpoint-table"), [failed_source | {"status": td.REMOVED}]) is None
    kept_bucket = act("s3-bucket", "empty-and-delete", "target") | {"status": td.KEPT_DATA}
    assert td.guard(act("kms-key", "schedule-key-deletion"), [kept_bucket]) == {"status": td.KEPT_KEY}
    assert td.guard(act("kms-alias", "delete-alias"), [kept_bucket]) == {"status": td.KEPT_KEY}
    assert td.guard(act("source-kms-key", "schedule-key-deletion"), [kept_bucket]) is None  # alerts only
    assert td.guard(act("kms-key", "schedule-key-deletion"), [kept_bucket | {"status": td.REMOVED}]) is None


# ---------------------------------------------------------------- against moto


def test_plan_lists_ours_and_skips_foreign(
    backend: Backend, cfg: MigrationConfig, state: dict[str, Any], tmp_path: Path
) -> None:
    names = resource_names(cfg)
    foreign = state["foreign"]
    found = td.discover.fn(backend, cfg)
    plan = td.teardown_plan(cfg, found)
    skipped = {a["name"] for a in plan if a["action"] == "skip"}
    assert skipped == {foreign["bucket"], foreign["table"], foreign["alarm"], foreign["otherAlarm"]}
    assert all(a["reason"].startswith("not ours") for a in plan if a["action"] == "skip")

    buckets, tables = _by(plan, "s3-bucket"), _by(plan, "dynamodb-table")
    for source in (RAW, PROCESSED):
        assert buckets[names.buckets[source]]["action"] == "empty-and-delete"
        assert buckets[names.buckets[source]]["destroysData"] is True
    for source in (EVENTS, USERS):
        assert tables[names.tables[source]] == tables[names.tables[source]] | {"action": "delete", "destroysData": True}
    ours_alarms = {a["name"] for a in state["moved"]["alarms"] if "error" not in a}
    assert {a["region"] for a in state["moved"]["alarms"]} == {SOURCE, TARGET}
    assert {n for n, a in _by(plan, "cloudwatch-alarm").items() if a["action"] == "delete"} == ours_alarms
    single = {
        "cloudwatch-dashboard": names.dashboard,
        "lambda-function": names.lambda_function,
        "log-group": names.log_group,
        "sns-topic": names.topic,
        "checkpoint-table": names.checkpoint_table,
        "kms-alias": names.kms_alias,
        "kms-key": names.kms_alias,
    }
    for resource, name in single.items():
        assert list(_by(plan, resource)) == [name], resource
    assert set(_by(plan, "iam-role")) == {names.replication_role, names.lambda_role}
    assert _by(plan, "kms-key")[names.kms_alias]["action"] == "schedule-key-deletion"

    rules = _by(plan, "s3-replication-rule")
    assert rules[RAW]["action"] == "delete-replication-configuration"
    assert rules[PROCESSED]["action"] == "remove-replication-rule" and FOREIGN_RULE in rules[PROCESSED]["reason"]
    # versioning: RAW was off before (suspend); PROCESSED was on before (not listed at all)
    assert list(_by(plan, "source-versioning")) == [RAW]
    assert _by(plan, "source-versioning")[RAW]["action"] == "suspend-versioning"
    # without the durable record, a report saying versioning was off is evidence; nothing at all is "unknown"
    store = CheckpointStore(backend, TARGET, names.checkpoint_table)
    store.delete(td.versioning_pk(RAW), td.VERSIONING_SK)
    unknown = _by(td.teardown_plan(cfg, td.discover.fn(backend, cfg)), "source-versioning")[RAW]
    assert unknown["action"] == "keep" and "suspend it by hand" in unknown["reason"]
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "migrationBatch": cfg.migration_batch,
                "environmentSuffix": cfg.environment_suffix,
                "resources": {"s3Buckets": [{"replication": state["moved"]["replication"][RAW]}]},
            }
        )
    )
    from_report = _by(td.teardown_plan(cfg, td.discover.fn(backend, cfg, report_path=report)), "source-versioning")
    assert from_report[RAW]["action"] == "suspend-versioning" and "migration report" in from_report[RAW]["reason"]
    # streams: ours on EVENTS; USERS had its own stream before the migration
    assert state["moved"]["streams"][USERS]["enabledByUs"] is False
    assert list(_by(plan, "source-stream")) == [EVENTS]
    assert _by(plan, "source-stream")[EVENTS]["action"] == "disable-stream"
    # plan order: every source change before any target deletion, key last
    phases = [a["phase"] for a in plan]
    assert phases == sorted(phases, key=td.PHASES.index) and plan[-1]["resource"] == "kms-key"
    assert teardown_plan_text(plan, found).count("[DESTROYS DATA]") == 5  # 2 buckets, 2 tables, the key


def test_execute_keeps_data_then_deletes_it_then_is_a_noop(
    backend: Backend, cfg: MigrationConfig, state: dict[str, Any]
) -> None:
    names = resource_names(cfg)
    foreign = state["foreign"]
    s3src = backend.client("s3", SOURCE)
    foreign_rule = next(
        r
        for r in s3src.get_bucket_replication(Bucket=PROCESSED)["ReplicationConfiguration"]["Rules"]
        if r["ID"] == FOREIGN_RULE
    )

    # 1. without --delete-target-data: data and the key stay, the rest goes, source changes are undone
    first = td.execute(backend, cfg, td.teardown_plan(cfg, td.discover.fn(backend, cfg)), delete_target_data=False)
    assert td.succeeded(first), [r for r in first if r["status"] == td.FAILED]
    by_status: dict[str, set[str]] = {}
    for r in first:
        by_status.setdefault(r["status"], set()).add(r["name"])
    assert by_status[td.KEPT_DATA] == {
        names.buckets[RAW],
        names.buckets[PROCESSED],
        names.tables[EVENTS],
        names.tables[USERS],
    }
    assert by_status[td.KEPT_KEY] == {names.kms_alias}
    assert by_status[td.SKIPPED] == {foreign["bucket"], foreign["table"], foreign["alarm"], foreign["otherAlarm"]}
    assert names.checkpoint_table in by_status[td.REMOVED] and names.topic in by_status[td.REMOVED]
    assert by_status["suspended"] == {RAW} and by_status["disabled"] == {EVENTS}
    assert "cannot be disabled" in next(r for r in first if r["status"] == "suspended")["note"]

    kms_t = backend.client("kms", TARGET)
    assert kms_t.describe_key(KeyId=names.kms_alias)["KeyMetadata"]["KeyState"] == "Enabled"
    assert backend.client("s3", TARGET).head_bucket(Bucket=names.buckets[RAW])
    assert s3src.get_bucket_versioning(Bucket=RAW)["Status"] == "Suspended"
    assert s3src.get_bucket_versioning(Bucket=PROCESSED)["Status"] == "Enabled"
    with pytest.raises(Exception, match="ReplicationConfigurationNotFound"):
        s3src.get_bucket_replication(Bucket=RAW)
    assert s3src.get_bucket_replication(Bucket=PROCESSED)["ReplicationConfiguration"]["Rules"] == [foreign_rule]
    ddb_src = backend.client("dynamodb", SOURCE)
    assert not ddb_src.describe_table(TableName=EVENTS)["Table"].get("StreamSpecification", {}).get("StreamEnabled")
    assert ddb_src.describe_table(TableName=USERS)["Table"]["StreamSpecification"]["StreamEnabled"] is True

    # 2. with --delete-target-data: everything ours goes; the key is scheduled with the 7-day minimum
    found = td.discover.fn(backend, cfg)
    assert found["checkpointTable"] is None and not found["sourceStreams"] and not found["replicationRules"]
    second = td.execute(backend, cfg, td.teardown_plan(cfg, found), delete_target_data=True)
    assert td.succeeded(second)
    key = next(r for r in second if r["resource"] == "kms-key")
    assert key["status"].startswith("scheduled for deletion on ") and key["deletionDate"]
    meta = kms_t.describe_key(KeyId=key["keyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    days = (meta["DeletionDate"] - meta["CreationDate"]).total_seconds() / 86400
    assert 6.9 < days < 7.1
    assert {r["name"] for r in second if r["status"] == td.REMOVED} >= {
        names.buckets[RAW],
        names.buckets[PROCESSED],
        names.tables[EVENTS],
        names.tables[USERS],
        names.kms_alias,
    }

    # nothing with our tags remains but the key pending deletion; IAM checked by name
    leftover = _tagged(backend, cfg)
    assert leftover == [meta["Arn"]], leftover
    iam_c = backend.client("iam", TARGET)
    for role in (names.replication_role, names.lambda_role):
        with pytest.raises(iam_c.exceptions.NoSuchEntityException):
            iam_c.get_role(RoleName=role)
    assert not [n for n in iam_c.list_roles()["Roles"] if n["RoleName"].startswith("migration-")]

    # source data byte-identical; foreign resources and the foreign rule untouched
    assert _snapshot(backend) == state["before"]
    theirs = backend.client("s3", TARGET).get_object(Bucket=foreign["bucket"], Key="theirs.txt")
    assert theirs["Body"].read() == b"theirs"
    assert backend.client("dynamodb", TARGET).get_item(TableName=foreign["table"], Key={"id": {"S": "theirs"}})["Item"]
    alarms = backend.client("cloudwatch", TARGET).describe_alarms(AlarmNamePrefix=cloudwatch.alarm_prefix(cfg))
    assert {a["AlarmName"] for a in alarms["MetricAlarms"]} == {foreign["alarm"], foreign["otherAlarm"]}
    assert s3src.get_bucket_replication(Bucket=PROCESSED)["ReplicationConfiguration"]["Rules"] == [foreign_rule]
    assert s3src.head_bucket(Bucket=PARTNER)

    # 3. a second run finds nothing of ours and succeeds without changing anything
    again = td.discover.fn(backend, cfg)
    assert again["kmsKey"]["state"] == "PendingDeletion" and not again["kmsKey"]["aliasExists"]
    plan = td.teardown_plan(cfg, again)
    assert td.changes(plan) == []
    third = td.execute(backend, cfg, plan, delete_target_data=True)
    assert td.succeeded(third) and {r["status"] for r in third} == {td.SKIPPED}
    assert "already scheduled for deletion" in teardown_plan_text(plan, again)


def test_other_environment_sees_only_foreign(backend: Backend, cfg: MigrationConfig) -> None:
    """Untagged look-alikes at another suffix's names (role, bucket, table) are listed and never touched."""
    qa = parse_config(cfg.model_dump() | {"environmentSuffix": "qa"})
    names = resource_names(qa)
    iam_c = backend.client("iam", TARGET)
    trust = json.dumps(iam.trust_policy("lambda.amazonaws.com"))
    iam_c.create_role(RoleName=names.lambda_role, AssumeRolePolicyDocument=trust)
    iam_c.put_role_policy(
        RoleName=names.lambda_role,
        PolicyName="theirs",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
        ),
    )
    backend.client("s3", TARGET).create_bucket(
        Bucket=names.buckets[RAW], CreateBucketConfiguration={"LocationConstraint": TARGET}
    )
    backend.client("s3", TARGET).put_bucket_tagging(
        Bucket=names.buckets[RAW], Tagging={"TagSet": tag_list({**cfg.tags()})}
    )  # tagged as the *dev* migration: still not qa's
    plan = td.teardown_plan(qa, td.discover.fn(backend, qa))
    assert {(a["resource"], a["name"], a["action"]) for a in plan} == {
        ("iam-role", names.lambda_role, "skip"),
        ("s3-bucket", names.buckets[RAW], "skip"),
    }
    results = td.execute(backend, qa, plan, delete_target_data=True)
    assert {r["status"] for r in results} == {td.SKIPPED}
    assert iam_c.get_role_policy(RoleName=names.lambda_role, PolicyName="theirs")
    assert backend.client("s3", TARGET).head_bucket(Bucket=names.buckets[RAW])


def test_cli_plan_changes_nothing_and_bad_config_is_one_line(
    backend: Backend,
    cfg: MigrationConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from flows import teardown as flow_mod

    names = resource_names(cfg)
    key = kms.ensure_key.fn(backend, cfg, backend.account_id(TARGET))["arn"]
    sns.ensure_topic.fn(backend, cfg, key)
    monkeypatch.setattr(flow_mod, "load", lambda args: (cfg, backend))
    assert flow_mod.main(["--plan"]) == 0
    out = capsys.readouterr().out
    assert "schedule-key-deletion" in out and names.topic in out
    assert backend.client("kms", TARGET).describe_key(KeyId=names.kms_alias)["KeyMetadata"]["KeyState"] == "Enabled"

    monkeypatch.undo()
    assert flow_mod.main(["--config", str(tmp_path / "nope.json"), "--plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_flow_removes_and_keeps_data(prefect_harness: None, backend: Backend, cfg: MigrationConfig) -> None:
    """The flow itself (use_aws=True lands in the same in-process moto): phases run as tasks, data is kept."""
    from flows.common import RunOptions
    from flows.teardown import teardown

    names = resource_names(cfg)
    key = kms.ensure_key.fn(backend, cfg, backend.account_id(TARGET))["arn"]
    sns.ensure_topic.fn(backend, cfg, key)
    ensure_checkpoint_table.fn(backend, TARGET, names.checkpoint_table, cfg.tags(), key)
    s3.ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key)
    backend.client("s3", TARGET).put_object(Bucket=names.buckets[RAW], Key="k", Body=b"v")
    out = teardown(options=RunOptions(config_path=str(EXAMPLE_CONFIG), use_aws=True))
    assert out["ok"] is True
    status = {r["name"]: r["status"] for r in out["results"]}
    assert status == {
        names.topic: td.REMOVED,
        names.buckets[RAW]: td.KEPT_DATA,
        names.checkpoint_table: td.REMOVED,
        names.kms_alias: td.KEPT_KEY,
    }
    assert backend.client("kms", TARGET).describe_key(KeyId=names.kms_alias)["KeyMetadata"]["KeyState"] == "Enabled"


def test_bucket_whose_first_key_ends_in_a_delete_marker_still_holds_data(
    backend: Backend, cfg: MigrationConfig
) -> None:
    """MaxKeys counts delete markers: one page of one entry is no answer to "does this bucket hold data?"."""
    s3c = backend.client("s3", TARGET)
    bucket = resource_names(cfg).buckets[RAW]
    s3c.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": TARGET})
    s3c.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list(cfg.tags())})
    s3c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a", "b"):
        s3c.put_object(Bucket=bucket, Key=key, Body=b"data")
    s3c.delete_object(Bucket=bucket, Key="a")  # newest entry of the first key: a delete marker
    assert not s3c.list_object_versions(Bucket=bucket, MaxKeys=1).get("Versions")  # the trap, as S3 answers it

    assert s3.bucket_has_data(s3c, bucket)
    found = td._find_buckets(backend, cfg, resource_names(cfg))
    assert [b["hasData"] for b in found if b["name"] == bucket] == [True]
    result = s3.delete_bucket(backend, TARGET, bucket, delete_data=False)
    assert result["status"] == td.KEPT_DATA
    assert len(s3c.list_object_versions(Bucket=bucket)["Versions"]) == 2

    # only delete markers left: nothing to keep, the bucket may go
    for v in s3c.list_object_versions(Bucket=bucket)["Versions"]:
        s3c.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3c.delete_object(Bucket=bucket, Key="b")
    assert not s3.bucket_has_data(s3c, bucket)
    assert s3.delete_bucket(backend, TARGET, bucket, delete_data=False)["status"] == td.REMOVED


def test_table_has_data_follows_empty_pages(cfg: MigrationConfig) -> None:
    """A Scan page may hold no item and still a LastEvaluatedKey: only the end of the scan says "empty"."""

    class Pages:
        def get_paginator(self, name: str) -> Any:
            assert name == "scan"
            return self

        def paginate(self, **kwargs: Any) -> Any:
            return iter([self.scan(**kwargs), {"Count": 1}])

        def scan(self, **kwargs: Any) -> dict[str, Any]:
            return {"Count": 0, "LastEvaluatedKey": {"pk": {"S": "x"}}}

    assert dynamodb.table_has_data(Pages(), "t")


# ---------------------------------------------------------------- the source-region alert topic and key (item 12)


def _source_alerts(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Target key + topic, the source-region key + topic, and the alarms wired to them, as provisioning does."""
    account = backend.account_id(TARGET)
    key = kms.ensure_key.fn(backend, cfg, account)["arn"]
    topic = sns.ensure_topic.fn(backend, cfg, key)["arn"]
    source_key = kms.ensure_source_key(backend, cfg, account)
    source_topic = sns.ensure_source_topic(backend, cfg, source_key["arn"])["arn"]
    cloudwatch.ensure_alarms(backend, cfg, topic, replication_rule_id(cfg), source_topic_arn=source_topic)
    return {"key": key, "sourceKey": source_key, "sourceTopic": source_topic}


def test_source_alert_topic_and_key_are_planned_and_removed(backend: Backend, cfg: MigrationConfig) -> None:
    """Teardown shows and removes the source-region topic (after the alarms publishing to it) and its key
    (alias deleted, key scheduled for deletion), even while target data and its key are kept."""
    names = resource_names(cfg)
    made = _source_alerts(backend, cfg)
    s3.ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], made["key"])
    backend.client("s3", TARGET).put_object(Bucket=names.buckets[cfg.s3_buckets[0].name], Key="k", Body=b"v")

    found = td.discover.fn(backend, cfg)
    plan = td.teardown_plan(cfg, found)
    topic = _by(plan, "source-sns-topic")[names.source_topic]
    assert (topic["action"], topic["region"], topic["phase"], topic["arn"]) == (
        "delete",
        SOURCE,
        "final",
        made["sourceTopic"],
    )
    assert _by(plan, "source-kms-alias")[names.source_kms_alias]["action"] == "delete-alias"
    key = _by(plan, "source-kms-key")[names.source_kms_alias]
    assert (key["action"], key["region"], key["keyId"]) == ("schedule-key-deletion", SOURCE, made["sourceKey"]["keyId"])
    order = [a["resource"] for a in plan]
    last_alarm = max(i for i, r in enumerate(order) if r == "cloudwatch-alarm")
    positions = [order.index(r) for r in ("source-sns-topic", "source-kms-alias", "source-kms-key")]
    assert last_alarm < positions[0] < positions[1] < positions[2]
    text = teardown_plan_text(plan, found)
    assert f"{names.source_topic} ({SOURCE})" in text and f"{names.source_kms_alias} ({SOURCE})" in text

    results = td.execute(backend, cfg, plan, delete_target_data=False)
    status = {(r["resource"], r["name"]): r["status"] for r in results}
    assert status[("source-sns-topic", names.source_topic)] == td.REMOVED
    assert status[("source-kms-alias", names.source_kms_alias)] == td.REMOVED
    assert status[("source-kms-key", names.source_kms_alias)].startswith("scheduled for deletion on ")
    assert status[("kms-key", names.kms_alias)] == td.KEPT_KEY  # the target key stays with the kept data
    # Measured on moto: topic and alias gone, key pending deletion, no source-region alarm left.
    src_kms = backend.client("kms", SOURCE)
    assert backend.client("sns", SOURCE).list_topics()["Topics"] == []
    assert [a for a in src_kms.list_aliases()["Aliases"] if a["AliasName"] == names.source_kms_alias] == []
    meta = src_kms.describe_key(KeyId=made["sourceKey"]["keyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    cw = backend.client("cloudwatch", SOURCE)
    assert cw.describe_alarms(AlarmNamePrefix=cloudwatch.alarm_prefix(cfg))["MetricAlarms"] == []

    again = td.discover.fn(backend, cfg)
    replan = td.teardown_plan(cfg, again)
    assert [a for a in replan if a["resource"].startswith("source-") and a["phase"] == "final"] == []
    text = teardown_plan_text(replan, again)
    assert f"{made['sourceKey']['keyId']} ({SOURCE}) is already scheduled for deletion" in text
    assert td.succeeded(td.execute(backend, cfg, replan, delete_target_data=False))


def test_foreign_source_topic_with_our_name_is_never_touched(backend: Backend, cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    theirs = backend.client("sns", SOURCE).create_topic(Name=names.source_topic)["TopicArn"]
    plan = td.teardown_plan(cfg, td.discover.fn(backend, cfg))
    assert _by(plan, "source-sns-topic")[names.source_topic]["action"] == "skip"
    results = td.execute(backend, cfg, plan, delete_target_data=False)
    assert {r["status"] for r in results if r["resource"] == "source-sns-topic"} == {td.SKIPPED}
    assert [t["TopicArn"] for t in backend.client("sns", SOURCE).list_topics()["Topics"]] == [theirs]
