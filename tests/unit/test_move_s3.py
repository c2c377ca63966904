"""S3 move: replication rule, partitions, backfill / catch-up copy, read back from moto in-process."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import UserError
from tasks.move import s3 as s3_move
from tasks.move import s3_object, s3_plan, s3_replication, s3_walk
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.s3 import copy_partition, plan_partitions
from tasks.move.s3_replication import ensure_replication
from tests.conftest import SOURCE, TARGET
from tests.s3_bucket import copy_bucket

SRC = "analytics-raw-data"
SRC2 = "analytics-processed"
DST = "analytics-raw-data-eu-20261128-dev"
TABLE = "migration-checkpoints-eu-20261128-dev"
ROLE = "arn:aws:iam::123456789012:role/migration-s3-replication"
MIB = 1024 * 1024

TRICKY_KEYS = [
    "with space/file name.txt",
    "unicodé/日本語/ファイル.txt",
    "plus+sign+key",
    "percent%20and%2Fslash%",
    "query?x=1&y=2#frag",
    "emoji 🎉/x",
    "zero-byte",
    "trailing/",
    "long/" + "k" * 995,  # 1,000 bytes
]


class Interrupted(BaseException):
    """Stands in for a kill / cancellation: not an ordinary per-object error."""


@pytest.fixture
def env(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Source bucket in us-east-1; target bucket (versioned, default SSE-KMS) and CMK in eu-west-1."""
    kms = backend.client("kms", TARGET)
    key_arn = kms.create_key(Description="target cmk")["KeyMetadata"]["Arn"]
    src = backend.client("s3", SOURCE)
    dst = backend.client("s3", TARGET)
    src.create_bucket(Bucket=SRC)
    dst.create_bucket(Bucket=DST, CreateBucketConfiguration={"LocationConstraint": TARGET})
    dst.put_bucket_versioning(Bucket=DST, VersioningConfiguration={"Status": "Enabled"})
    dst.put_bucket_encryption(
        Bucket=DST,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    ensure_checkpoint_table.fn(backend, TARGET, TABLE, cfg.tags(), key_arn)
    return {"key": key_arn, "src": src, "dst": dst}


def _put(s3: Any, key: str, body: bytes, **kwargs: Any) -> None:
    s3.put_object(Bucket=SRC, Key=key, Body=body, **kwargs)


def _sync(backend: Backend, cfg: MigrationConfig, env: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return copy_bucket(backend, cfg, SRC, DST, env["key"], TABLE, **kwargs)


def _count_calls(client: Any, *ops: str) -> Counter[str]:
    """Count API calls on a client through botocore's event hooks."""
    counts: Counter[str] = Counter()

    def hook(event_name: str, **_: Any) -> None:
        counts[event_name.rsplit(".", 1)[-1]] += 1

    for op in ops:
        client.meta.events.register(f"before-call.s3.{op}", hook)
    return counts


def _hook(client: Any, op: str, fn: Callable[..., None]) -> Callable[[], None]:
    """Run fn(params=<API params>, ...) before every `op` call on client; returns the undo."""
    event = f"before-parameter-build.s3.{op}"
    client.meta.events.register(event, fn)
    return lambda: client.meta.events.unregister(event, fn)


def _versions(dst: Any) -> Counter[str]:
    out: Counter[str] = Counter()
    for page in dst.get_paginator("list_object_versions").paginate(Bucket=DST):
        for v in page.get("Versions", []):
            out[v["Key"]] += 1
    return out


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# ---------------------------------------------------------------------------------------------- pure


def test_partition_ranges_edges() -> None:
    keys = [f"k{i:03d}" for i in range(25)]
    parts = s3_plan.partition_ranges(keys, 10)
    assert parts == [
        {"id": "p00000", "start_after": None, "end": "k009"},
        {"id": "p00001", "start_after": "k009", "end": "k019"},
        {"id": "p00002", "start_after": "k019", "end": None},
    ]
    assert s3_plan.partition_ranges(keys[:20], 10)[-1] == {"id": "p00001", "start_after": "k009", "end": None}
    assert s3_plan.partition_ranges([], 10) == [{"id": "p00000", "start_after": None, "end": None}]
    for key in keys:  # every key in exactly one range
        assert sum(s3_plan.in_range(key, p["start_after"], p["end"]) for p in parts) == 1


def test_redirect_args_carry_only_a_set_redirect() -> None:
    assert s3_plan.redirect_args({"WebsiteRedirectLocation": "/b.html", "ContentType": "x"}) == {
        "WebsiteRedirectLocation": "/b.html"
    }
    assert s3_plan.redirect_args({"WebsiteRedirectLocation": ""}) == {} == s3_plan.redirect_args({})


def test_skip_and_catchup_decisions() -> None:
    src = {"etag": '"a"', "size": 3}
    dst = {"etag": '"b"', "size": 3}
    rec = {"srcEtag": '"a"', "dstEtag": '"b"', "size": 3}
    assert s3_plan.is_done(src, dst, rec)
    assert not s3_plan.is_done(src, None, rec)
    assert not s3_plan.is_done(src, dst, None)
    assert not s3_plan.is_done({"etag": '"new"', "size": 3}, dst, rec)  # source overwritten
    assert not s3_plan.is_done(src, {"etag": '"other"', "size": 3}, rec)  # target overwritten
    assert not s3_plan.is_done(src, {"etag": '"b"', "size": 4}, rec)
    assert s3_plan.catchup_action("COMPLETED", 5, dst, 3) == "replicated"
    assert s3_plan.catchup_action("COMPLETED", 5, None, 3) == "copy"
    assert s3_plan.catchup_action("PENDING", 60, None, 3) == "pending"
    assert s3_plan.catchup_action("PENDING", 3600, None, 3) == "copy"
    assert s3_plan.catchup_action("FAILED", 5, dst, 3) == "copy"
    assert s3_plan.catchup_action(None, 5, dst, 3) == "copy"


def test_rule_drift_and_priority() -> None:
    rule = s3_plan.replication_rule("r", 2, "arn:aws:s3:::d", "k")
    assert s3_plan.rule_drift(rule, rule) == []
    assert "Priority" in s3_plan.rule_drift(rule, None)
    actual = {**rule, "DeleteMarkerReplication": {"Status": "Disabled"}, "Priority": "2"}
    assert s3_plan.rule_drift(rule, actual) == ["DeleteMarkerReplication.Status"]
    assert s3_plan.next_priority([{"Priority": 3}, {"Priority": 7}]) == 8
    assert s3_plan.next_priority([]) == 1
    assert s3_plan.v1_rules([{"ID": "old", "Prefix": "x"}, {"ID": "new", "Filter": {}}]) == ["old"]
    assert s3_plan.bucket_arn("b", "cn-north-1") == "arn:aws-cn:s3:::b"


# ----------------------------------------------------------------------------------------- replication


def test_ensure_replication_idempotent_and_keeps_foreign_rule(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src = env["src"]
    fresh = ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert fresh["versioningBefore"] == "Disabled" and fresh["versioningNow"] == "Enabled"
    assert len(fresh["sourceChanged"]) == 2 and "versioning" in fresh["sourceChanged"][0]
    assert ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])["sourceChanged"] == []

    src.create_bucket(Bucket=SRC2)
    src.put_bucket_versioning(Bucket=SRC2, VersioningConfiguration={"Status": "Enabled"})
    src.put_bucket_replication(
        Bucket=SRC2,
        ReplicationConfiguration={
            "Role": ROLE,
            "Rules": [
                {
                    "ID": "backup-team",
                    "Priority": 5,
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": "arn:aws:s3:::backup-bucket"},
                }
            ],
        },
    )
    first = ensure_replication.fn(backend, cfg, SRC2, DST, ROLE, env["key"])
    assert first["created"] is True
    assert first["versioningBefore"] == first["versioningNow"] == "Enabled"
    assert first["ruleId"] == "region-migration-batch-001-dev"
    assert first["ruleStatus"] == "Enabled"
    assert first["priority"] == 6
    assert first["destination"] == f"arn:aws:s3:::{DST}"
    assert first["replicaKmsKeyId"] == env["key"]
    assert first["foreignRules"] == ["backup-team"] and first["foreignRulesPreserved"]
    assert len(first["sourceChanged"]) == 1 and "added replication rule" in first["sourceChanged"][0]

    second = ensure_replication.fn(backend, cfg, SRC2, DST, ROLE, env["key"])
    assert second["created"] is False
    assert second["repaired"] == []
    assert second["sourceChanged"] == []
    assert second["ruleId"] == first["ruleId"] and second["priority"] == 6
    assert second["notSupportedByBackend"] == first["notSupportedByBackend"]

    rules = src.get_bucket_replication(Bucket=SRC2)["ReplicationConfiguration"]["Rules"]
    assert sorted(r["ID"] for r in rules) == ["backup-team", "region-migration-batch-001-dev"]
    foreign = next(r for r in rules if r["ID"] == "backup-team")
    assert foreign["Destination"]["Bucket"] == "arn:aws:s3:::backup-bucket"


def test_ensure_replication_repairs_drift_and_keeps_foreign_role(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src = env["src"]
    ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    config = src.get_bucket_replication(Bucket=SRC)["ReplicationConfiguration"]
    config["Rules"][0]["Status"] = "Disabled"
    src.put_bucket_replication(Bucket=SRC, ReplicationConfiguration=config)
    fixed = ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert fixed["ruleStatus"] == "Enabled"
    assert fixed["repaired"] == ["replication rule Status"]
    assert fixed["sourceChanged"] and "Status" in fixed["sourceChanged"][0]

    other_role = "arn:aws:iam::123456789012:role/someone-else"
    config = src.get_bucket_replication(Bucket=SRC)["ReplicationConfiguration"]
    foreign = {**config["Rules"][0], "ID": "theirs", "Priority": 1}
    src.put_bucket_replication(
        Bucket=SRC, ReplicationConfiguration={"Role": other_role, "Rules": [foreign, config["Rules"][0]]}
    )
    kept = ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert kept["role"] == other_role
    assert kept["warnings"] and other_role in kept["warnings"][0]


def test_ensure_replication_refuses_v1_rules(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    """AWS returns V1 rules (top-level Prefix) as written; moto rewrites them, so a hook shows AWS's shape."""
    src = env["src"]
    src.put_bucket_versioning(Bucket=SRC, VersioningConfiguration={"Status": "Enabled"})
    legacy = {"ID": "legacy", "Prefix": "logs/", "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::x"}}
    src.put_bucket_replication(Bucket=SRC, ReplicationConfiguration={"Role": ROLE, "Rules": [legacy]})

    def as_on_aws(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ReplicationConfiguration"]["Rules"] = [legacy]

    src.meta.events.register("after-call.s3.GetBucketReplication", as_on_aws)
    with pytest.raises(UserError, match="V1"):
        ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert src.get_bucket_replication(Bucket=SRC)["ReplicationConfiguration"]["Rules"] == [legacy]


# ----------------------------------------------------------------------------------------------- copy


def test_tricky_keys_round_trip_with_metadata_tags_and_target_cmk(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for i, key in enumerate(TRICKY_KEYS):
        body = b"" if key == "zero-byte" else f"body {i} {key}".encode()
        _put(
            src,
            key,
            body,
            Metadata={"owner": "team-a", "n": str(i)},
            ContentType="text/csv",
            CacheControl="max-age=60",
            ContentEncoding="identity",
            Tagging=f"team=data&idx={i}",
        )
    stats = _sync(backend, cfg, env)
    assert stats["seen"] == stats["copied"] == len(TRICKY_KEYS)
    assert stats["failed"] == 0 and stats["vanished"] == 0
    assert stats["bytes_copied"] == stats["bytes_seen"]
    for key in TRICKY_KEYS:
        assert _body(dst, DST, key) == _body(src, SRC, key)
        s, t = src.head_object(Bucket=SRC, Key=key), dst.head_object(Bucket=DST, Key=key)
        for field in ("Metadata", "ContentType", "CacheControl", "ContentEncoding", "ContentLength"):
            assert t.get(field) == s.get(field), (key, field)
        assert t["ServerSideEncryption"] == "aws:kms"
        assert t["SSEKMSKeyId"] == env["key"]
        assert (
            dst.get_object_tagging(Bucket=DST, Key=key)["TagSet"]
            == src.get_object_tagging(Bucket=SRC, Key=key)["TagSet"]
        )


def test_large_object_goes_multipart_and_keeps_metadata_and_tags(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    body = os.urandom(6 * MIB)
    _put(
        src,
        "big/blob.bin",
        body,
        Metadata={"origin": "us"},
        ContentType="application/x-parquet",
        CacheControl="no-cache",
        ContentEncoding="gzip",
        Tagging="class=large&keep=yes",
    )
    _put(src, "small.txt", b"small")
    calls = _count_calls(dst, "CopyObject", "UploadPartCopy")
    stats = _sync(backend, cfg, env, multipart_threshold=5 * MIB)
    assert stats["copied"] == 2 and stats["multipart"] == 1
    assert calls["UploadPartCopy"] >= 2  # 6 MiB in 5 MiB parts
    assert calls["CopyObject"] == 1  # only the small object
    assert _body(dst, DST, "big/blob.bin") == body
    head = dst.head_object(Bucket=DST, Key="big/blob.bin")
    assert head["Metadata"] == {"origin": "us"}
    assert head["ContentType"] == "application/x-parquet"
    assert head["CacheControl"] == "no-cache"
    assert head["ContentEncoding"] == "gzip"
    assert head["SSEKMSKeyId"] == env["key"]
    tags = {t["Key"]: t["Value"] for t in dst.get_object_tagging(Bucket=DST, Key="big/blob.bin")["TagSet"]}
    assert tags == {"class": "large", "keep": "yes"}

    calls.clear()
    again = _sync(backend, cfg, env, multipart_threshold=5 * MIB)
    assert again["copied"] == 0 and again["skipped"] == 2
    assert sum(calls.values()) == 0


def test_rerun_makes_no_copy_and_recopies_only_changes(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for i in range(30):
        _put(src, f"obj/{i:03d}", f"v1 {i}".encode())
    first = _sync(backend, cfg, env, max_keys_per_partition=8)
    assert first["partitions"] == 4 and first["copied"] == 30

    src_calls = _count_calls(src, "HeadObject", "GetObjectTagging", "CopyObject")
    dst_calls = _count_calls(dst, "CopyObject", "UploadPartCopy", "HeadObject", "PutObject")
    ddb_calls: Counter[str] = Counter()
    ddb = backend.client("dynamodb", TARGET)
    ddb.meta.events.register("before-call.dynamodb.*", lambda event_name, **_: ddb_calls.update([event_name]))
    second = _sync(backend, cfg, env, max_keys_per_partition=8)
    assert second["copied"] == 0 and second["skipped"] == 30
    assert sum(src_calls.values()) == 0 and sum(dst_calls.values()) == 0  # no per-object call at all
    # Unchanged ranges are proven done by their stored digest: one GetItem each, no manifest Query.
    assert ddb_calls == Counter({"before-call.dynamodb.GetItem": 4})

    _put(src, "obj/003", b"v2 three, longer")
    _put(src, "obj/017", b"v2 17")
    _put(src, "obj/zzz-new", b"new")
    third = _sync(backend, cfg, env, max_keys_per_partition=8)
    assert third["copied"] == 3 and third["skipped"] == 28
    assert dst_calls["CopyObject"] == 3
    assert _body(dst, DST, "obj/003") == b"v2 three, longer"
    assert _body(dst, DST, "obj/zzz-new") == b"new"

    # A target object changed behind our back is noticed from the listing alone and repaired.
    dst.put_object(Bucket=DST, Key="obj/005", Body=b"tampered")
    fourth = _sync(backend, cfg, env)
    assert fourth["copied"] == 1
    assert _body(dst, DST, "obj/005") == b"v1 5"


def test_rerun_lists_only_the_target_when_planning_summed_the_source(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """Planning lists the source anyway and sums each range's rows (srcSum): an unchanged range's re-run
    lists only its target side, never its source range a second time; any change still goes the long way."""
    src, dst = env["src"], env["dst"]
    for i in range(30):
        _put(src, f"obj/{i:03d}", f"v1 {i}".encode())
    assert _sync(backend, cfg, env, max_keys_per_partition=8)["copied"] == 30

    ranges = plan_partitions.fn(backend, cfg.source_region, SRC, 8)
    assert len(ranges) == 4 and all(r["srcSum"] for r in ranges)
    src_lists, dst_lists = _count_calls(src, "ListObjectsV2"), _count_calls(dst, "ListObjectsV2")

    def rerun() -> list[dict[str, Any]]:
        return [copy_partition.fn(backend, cfg, SRC, DST, r, env["key"], TABLE) for r in ranges]

    results = rerun()
    assert [r["skipped"] for r in results] == [8, 8, 8, 6] and sum(r["copied"] for r in results) == 0
    assert sum(r["seen"] for r in results) == 30 and sum(r["bytes_seen"] for r in results) == sum(
        len(f"v1 {i}".encode()) for i in range(30)
    )
    assert src_lists["ListObjectsV2"] == 0 and dst_lists["ListObjectsV2"] == 4

    # A target object changed behind our back: that range lists its source and repairs the object.
    dst.put_object(Bucket=DST, Key="obj/005", Body=b"tampered")
    results = rerun()
    assert [r["copied"] for r in results] == [1, 0, 0, 0] and src_lists["ListObjectsV2"] == 1
    assert _body(dst, DST, "obj/005") == b"v1 5"

    # A source change after the plan it was summed in: the stale sum no longer matches, so the range is listed.
    _put(src, "obj/020", b"v2 twenty")
    fresh = plan_partitions.fn(backend, cfg.source_region, SRC, 8)
    assert [r["srcSum"] for r in fresh][:2] == [r["srcSum"] for r in ranges][:2] and fresh[2] != ranges[2]
    again = [copy_partition.fn(backend, cfg, SRC, DST, r, env["key"], TABLE) for r in fresh]
    assert [r["copied"] for r in again] == [0, 0, 1, 0] and _body(dst, DST, "obj/020") == b"v2 twenty"


def test_first_copy_into_an_empty_target_reads_no_manifest(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """Nothing in the target range means nothing the manifest could prove done: no Query before the copies."""
    for i in range(12):
        _put(env["src"], f"m/{i:02d}", b"x")
    ddb_calls: Counter[str] = Counter()
    ddb = backend.client("dynamodb", TARGET)
    ddb.meta.events.register("before-call.dynamodb.*", lambda event_name, **_: ddb_calls.update([event_name]))
    assert _sync(backend, cfg, env, max_keys_per_partition=5)["copied"] == 12
    assert ddb_calls["before-call.dynamodb.Query"] == 0 and ddb_calls["before-call.dynamodb.BatchWriteItem"] == 3
    # With objects in the target (a resumed range) the records are read as before.
    env["dst"].delete_object(Bucket=DST, Key="m/00")
    assert _sync(backend, cfg, env, max_keys_per_partition=5)["copied"] == 1
    assert ddb_calls["before-call.dynamodb.Query"] == 1


def test_a_range_is_walked_page_by_page_with_a_bounded_window_of_copies(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task holds a page of each listing and its copies in flight, never its whole range: when any copy starts,
    the source has been listed no further than that copy, the window and two pages ahead (the old walk listed the
    whole range before its first copy). Walked across many pages, it still decides every key right."""
    monkeypatch.setattr(s3_walk, "LIST_PAGE", 5)
    src, dst = env["src"], env["dst"]
    for i in range(60):
        _put(src, f"w/{i:03d}", f"walk {i}".encode())
    listed = Counter[str]()
    ahead: list[int] = []

    def on_page(parsed: dict[str, Any], **_: Any) -> None:
        listed["keys"] += len(parsed.get("Contents", []))

    def at_copy(**_: Any) -> None:
        ahead.append(listed["keys"] - len(ahead))  # keys listed beyond the copies started

    src.meta.events.register("after-call.s3.ListObjectsV2", on_page)

    undo = _hook(dst, "CopyObject", at_copy)
    first = copy_partition.fn(backend, cfg, SRC, DST, {"id": "p0"}, env["key"], TABLE, workers=1)
    undo()
    assert first["copied"] == 60 and first["seen"] == 60 and len(ahead) == 60
    window = s3_move.WINDOW_PER_WORKER * 1
    assert max(ahead) <= window + 2 * 5, ahead

    # Across page boundaries, the merge and the manifest read beside it still tell done from not done.
    for i in range(0, 60, 7):
        dst.delete_object(Bucket=DST, Key=f"w/{i:03d}")
    dst.put_object(Bucket=DST, Key="w/030", Body=b"tampered")
    dst.put_object(Bucket=DST, Key="w/zz-target-only", Body=b"theirs")
    again = copy_partition.fn(backend, cfg, SRC, DST, {"id": "p0"}, env["key"], TABLE, workers=2)
    assert again["copied"] == len(range(0, 60, 7)) + 1 and again["skipped"] == 60 - again["copied"]
    assert again["target_only"] == 1 and _body(dst, DST, "w/030") == b"walk 30"
    assert copy_partition.fn(backend, cfg, SRC, DST, {"id": "p0"}, env["key"], TABLE)["copied"] == 0


def test_resume_after_interruption_copies_only_the_rest(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for i in range(40):
        _put(src, f"r/{i:03d}", f"payload {i}".encode())
    allowed = 10
    seen = Counter[str]()

    def kill_after_n(**_: Any) -> None:
        seen["calls"] += 1
        if seen["calls"] > allowed:
            raise Interrupted("process killed")

    undo = _hook(dst, "CopyObject", kill_after_n)
    with pytest.raises(Interrupted):
        _sync(backend, cfg, env, workers=4)
    undo()
    manifest = list(CheckpointStore(backend, TARGET, TABLE).query(s3_plan.manifest_pk(DST)))
    assert len(manifest) == allowed  # every finished copy was recorded despite the interruption

    calls = _count_calls(dst, "CopyObject")
    rerun = _sync(backend, cfg, env, workers=4)
    assert rerun["copied"] == 40 - allowed and rerun["skipped"] == allowed
    assert calls["CopyObject"] == 40 - allowed
    versions = _versions(dst)
    assert set(versions) == {f"r/{i:03d}" for i in range(40)}
    assert set(versions.values()) == {1}  # each object copied exactly once
    for i in range(40):
        assert _body(dst, DST, f"r/{i:03d}") == f"payload {i}".encode()


def test_per_object_errors_are_reported_and_retried_next_run(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for i in range(12):
        _put(src, f"e/{i:02d}", b"x" * i)

    def fail_some(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] in ("e/03", "e/07"):
            raise RuntimeError("injected network failure")

    undo = _hook(dst, "CopyObject", fail_some)
    stats = _sync(backend, cfg, env)
    undo()
    assert stats["copied"] == 10 and stats["failed"] == 2
    assert sorted(f["key"] for f in stats["failures"]) == ["e/03", "e/07"]
    assert "injected" in stats["failures"][0]["error"]
    rerun = _sync(backend, cfg, env)
    assert rerun["copied"] == 2 and rerun["failed"] == 0
    assert set(_versions(dst).values()) == {1}


def test_object_deleted_between_listing_and_copy_is_vanished(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for key in ("a", "gone", "z"):
        _put(src, key, key.encode())

    def delete_first(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == "gone":
            src.delete_object(Bucket=SRC, Key="gone")

    undo = _hook(dst, "CopyObject", delete_first)
    stats = _sync(backend, cfg, env)
    undo()
    assert stats["copied"] == 2 and stats["vanished"] == 1 and stats["failed"] == 0
    assert stats["vanishedKeys"] == ["gone"]
    assert sorted(_versions(dst)) == ["a", "z"]


def test_source_overwritten_during_copy_copies_the_new_version(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """On AWS CopySourceIfMatch answers 412 when the listed version was replaced; moto ignores the header,
    so the hook plays S3's part: overwrite the source, then refuse the first copy."""
    src, dst = env["src"], env["dst"]
    _put(src, "hot", b"old")
    state = {"refused": False}

    def overwrite_then_412(params: dict[str, Any], **_: Any) -> None:
        if not state["refused"]:
            state["refused"] = True
            _put(src, "hot", b"brand new content")
            raise ClientError(
                {"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions failed"}},
                "CopyObject",
            )
        assert params["CopySourceIfMatch"] == src.head_object(Bucket=SRC, Key="hot")["ETag"]

    undo = _hook(dst, "CopyObject", overwrite_then_412)
    stats = _sync(backend, cfg, env)
    undo()
    assert stats["copied"] == 1 and stats["failed"] == 0
    assert _body(dst, DST, "hot") == b"brand new content"
    assert _sync(backend, cfg, env)["copied"] == 0  # the manifest holds the new version's ETag


def test_catchup_trusts_completed_replication_and_waits_for_young_pending(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    for key in ("completed", "pending-young", "pending-old", "failed", "never"):
        _put(src, key, key.encode())
    dst.put_object(Bucket=DST, Key="completed", Body=b"completed")  # what replication would have written
    old = datetime.now(UTC) - timedelta(hours=1)
    fake = {
        "completed": ("COMPLETED", None),
        "pending-young": ("PENDING", None),
        "pending-old": ("PENDING", old),
        "failed": ("FAILED", None),
    }

    def replication_status(parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        key = kwargs["context"].get("key")
        if key in fake:
            status, modified = fake[key]
            parsed["ReplicationStatus"] = status
            if modified:
                parsed["LastModified"] = modified

    def remember_key(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["key"] = params["Key"]

    src.meta.events.register("before-parameter-build.s3.HeadObject", remember_key)
    src.meta.events.register("after-call.s3.HeadObject", replication_status)
    stats = _sync(backend, cfg, env, mode="catchup")
    assert stats["replicated"] == 1 and stats["pending_replication"] == 1
    assert stats["copied"] == 3  # pending-old, failed, never (moto never replicates)
    assert sorted(_versions(dst)) == ["completed", "failed", "never", "pending-old"]

    src_heads = _count_calls(src, "HeadObject")
    again = _sync(backend, cfg, env, mode="catchup")
    assert again["copied"] == 0 and again["pending_replication"] == 1
    assert src_heads["HeadObject"] == 1  # only the still-pending object is looked at again


def test_plan_partitions_cover_every_key_once(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    src = env["src"]
    keys = [f"p/{i:02d}" for i in range(25)]
    for key in keys:
        _put(src, key, b"x")
    parts = plan_partitions.fn(backend, SOURCE, SRC, max_keys_per_partition=10)
    assert [p["end"] for p in parts] == ["p/09", "p/19", None]
    seen = 0
    for part in parts:
        stats = copy_partition.fn(backend, cfg, SRC, DST, part, env["key"], TABLE, workers=4)
        seen += stats["seen"]
        assert stats["copied"] == stats["seen"] and stats["bytes_copied"] == stats["bytes_seen"] == stats["seen"]
        for field in ("skipped", "failed", "failures", "vanished", "pending_replication", "duration_s"):
            assert field in stats
    assert seen == 25
    assert sorted(_versions(env["dst"])) == keys


# ------------------------------------------------------- replication rule right after versioning (issue 8, item 6)


class _Http400:
    status_code = 400


def _answer_s3(client: Any, op: str, answers: list[str]) -> list[str]:
    """`op` answers InvalidRequest with each message first (botocore raises its own error class, as for a real
    response), then reaches the backend; returns the answers given."""
    given: list[str] = []

    def before_call(**_: Any) -> Any:
        if len(given) >= len(answers):
            return None
        given.append(answers[len(given)])
        error = {"Code": "InvalidRequest", "Message": given[-1]}
        return _Http400(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    client.meta.events.register(f"before-call.s3.{op}", before_call)
    return given


def test_replication_waits_for_fresh_versioning_to_propagate(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import consistency

    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    given = _answer_s3(
        env["src"],
        "PutBucketReplication",
        [
            "Destination bucket must have versioning enabled.",
            "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
            "Destination bucket must have versioning enabled.",
        ],
    )
    out = ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert len(given) == 3 and len(sleeps) == 3
    assert out["created"] is True and out["ruleStatus"] == "Enabled"


def test_replication_gives_up_after_the_propagation_bound(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import consistency

    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    _answer_s3(env["src"], "PutBucketReplication", ["Destination bucket must have versioning enabled."] * 10**6)
    with pytest.raises(consistency.NotConsistentError, match="target bucket's versioning"):
        ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert sum(sleeps) == pytest.approx(s3_replication.VERSIONING_PROPAGATION_S)  # 15 minutes, the S3 docs' bound


def test_replication_other_invalid_requests_are_not_retried(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import consistency

    sleeps: list[float] = []
    monkeypatch.setattr(consistency, "_sleep", sleeps.append)
    _answer_s3(env["src"], "PutBucketReplication", ["Replication destination must be a bucket ARN"])
    with pytest.raises(ClientError, match="destination must be a bucket"):
        ensure_replication.fn(backend, cfg, SRC, DST, ROLE, env["key"])
    assert sleeps == []


# ------------------------------------------------------------------ issue 8: resume, encryption, deletes


def _fake_replicated(src: Any, keys: set[str], status: str = "COMPLETED") -> None:
    """Make a HeadObject say ReplicationStatus `status` for `keys` (moto never replicates): COMPLETED on the
    source, REPLICA on the target."""

    def remember_key(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["key"] = params["Key"]

    def completed(parsed: dict[str, Any], **kwargs: Any) -> None:
        if kwargs["context"].get("key") in keys:
            parsed["ReplicationStatus"] = status

    src.meta.events.register("before-parameter-build.s3.HeadObject", remember_key)
    src.meta.events.register("after-call.s3.HeadObject", completed)


def test_copies_made_after_the_last_manifest_flush_are_recorded_not_redone(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """A kill -9 loses the manifest records of copies it made since the last flush (and the range digest)."""
    src, dst = env["src"], env["dst"]
    for i in range(30):
        _put(src, f"k/{i:03d}", f"payload {i}".encode() * 3)
    _put(src, "k/sha", b"sha256 checked", ChecksumAlgorithm="SHA256")
    assert _sync(backend, cfg, env, workers=4)["copied"] == 31
    store = CheckpointStore(backend, TARGET, TABLE)
    lost = [f"k/{i:03d}" for i in range(0, 30, 3)] + ["k/sha"]
    for key in lost:
        store.delete(s3_plan.manifest_pk(DST), key)
    store.delete_pk(s3_plan.range_pk(DST))
    # Our copies carry the source's checksum (CopyObject copies the source's algorithm by default): the
    # resume can prove the target already holds the content.
    for key in ("k/000", "k/sha"):
        a = src.head_object(Bucket=SRC, Key=key, ChecksumMode="ENABLED")
        b = dst.head_object(Bucket=DST, Key=key, ChecksumMode="ENABLED")
        algo = "SHA256" if key == "k/sha" else "CRC32"
        assert a[f"Checksum{algo}"] and a[f"Checksum{algo}"] == b[f"Checksum{algo}"]

    calls = _count_calls(dst, "CopyObject")
    rerun = _sync(backend, cfg, env, workers=4)
    assert rerun["copied"] == 0 and calls["CopyObject"] == 0
    assert rerun["adopted"] == len(lost) and rerun["skipped"] == 31
    assert set(_versions(dst).values()) == {1}  # no object got a second version
    again = _sync(backend, cfg, env, workers=4)  # recorded: the next run needs no HEAD at all
    assert again["copied"] == again["adopted"] == 0 and again["skipped"] == 31


def test_same_size_but_different_content_is_still_copied(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    _put(src, "same-size", b"new content")
    dst.put_object(Bucket=DST, Key="same-size", Body=b"old content")  # no manifest record, equal size
    stats = _sync(backend, cfg, env)
    assert stats["copied"] == 1 and stats["adopted"] == 0
    assert _body(dst, DST, "same-size") == b"new content"


@pytest.fixture
def no_probe_cache() -> None:
    """Each test measures UpdateObjectEncryption on its own backend (results are cached per bucket)."""
    s3_object.clear_update_support()


@pytest.mark.usefixtures("no_probe_cache")
def test_catchup_reencrypts_a_replica_that_is_not_under_the_key(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas of SSE-S3 objects keep SSE-S3 on AWS: the catch-up puts them under the migration key, in place
    where UpdateObjectEncryption works, else by a copy onto itself that keeps metadata, type and tags."""
    src, dst = env["src"], env["dst"]
    body = b"replicated bytes " * 10
    for key in ("replica", "ours"):
        _put(src, key, body, ContentType="text/csv", Metadata={"owner": "team-a"}, Tagging="tier=gold")
    dst.put_object(
        Bucket=DST,
        Key="replica",
        Body=body,
        ServerSideEncryption="AES256",
        ContentType="text/csv",
        Metadata={"owner": "team-a"},
        Tagging="tier=gold",
    )
    _fake_replicated(src, {"replica"})
    dst.put_object(Bucket=DST, Key=s3_object.PROBE_PREFIX + "left-by-a-killed-run", Body=b"probe")
    monkeypatch.setattr(s3_object, "PROBE_LEFTOVER_S", -1.0)  # treat it as old enough to be a leftover
    stats = _sync(backend, cfg, env, mode="catchup")
    assert stats["target_only_foreign"] == 0  # probe objects are ours, never reported as foreign
    head = dst.head_object(Bucket=DST, Key="replica")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == env["key"]
    assert stats["replicated"] == 1 and stats["copied"] == 1  # "ours" had no replica: copied under the key
    assert stats["reencrypted_copy"] == 1 and stats["reencrypted_update"] == 0
    # moto answers UpdateObjectEncryption with 200 but writes its XML body as a new version: measured on a
    # probe object, so the copy fallback is used and the report says why.
    assert "new object version" in stats["updateObjectEncryptionUnsupported"]
    assert head["ContentType"] == "text/csv" and head["Metadata"] == {"owner": "team-a"}
    assert dst.get_object_tagging(Bucket=DST, Key="replica")["TagSet"] == [{"Key": "tier", "Value": "gold"}]
    assert _body(dst, DST, "replica") == body
    assert _versions(dst) == {"replica": 2, "ours": 1}  # the replica's own version is kept
    probes = dst.list_object_versions(Bucket=DST, Prefix=s3_object.PROBE_PREFIX)
    assert not probes.get("Versions") and not probes.get("DeleteMarkers")  # the probe left nothing
    again = _sync(backend, cfg, env, mode="catchup")
    assert again["copied"] == again["reencrypted_copy"] == 0


# What a multipart copy must carry; tags are checked apart. WebsiteRedirectLocation is never copied by a directive.
MULTIPART_KEPT = (
    "Metadata",
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentLanguage",
    "StorageClass",
    "WebsiteRedirectLocation",
    "ContentLength",
)


@pytest.mark.usefixtures("no_probe_cache")
def test_multipart_copies_keep_metadata_tags_class_and_key_from_the_source_and_onto_itself(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """Both multipart paths (a backfill copy; a replica's copy onto itself under the key) keep what CopyObject
    keeps: s3transfer carries metadata and tags, we pass the storage class and the redirect. A threshold of
    1 KiB makes a 4 KiB object multipart (one part) without uploading megabytes."""
    src, dst = env["src"], env["dst"]
    body = os.urandom(4096)
    attrs: dict[str, Any] = {
        "Metadata": {"origin": "us", "n": "1"},
        "ContentType": "application/x-parquet",
        "CacheControl": "no-cache",
        "ContentDisposition": "attachment",
        "ContentLanguage": "en",
        "StorageClass": "STANDARD_IA",
        "WebsiteRedirectLocation": "/elsewhere.html",
        "Tagging": "class=large&keep=yes&owner=team-a",
    }
    for key in ("mp/copied", "mp/replica"):
        _put(src, key, body, **attrs)
    dst.put_object(Bucket=DST, Key="mp/replica", Body=body, ServerSideEncryption="AES256", **attrs)
    _fake_replicated(src, {"mp/replica"})
    calls = _count_calls(dst, "CopyObject", "UploadPartCopy")
    stats = _sync(backend, cfg, env, mode="catchup", multipart_threshold=1024)
    assert stats["copied"] == stats["multipart"] == 1 and stats["replicated"] == stats["reencrypted_copy"] == 1
    assert calls["UploadPartCopy"] == 2 and calls["CopyObject"] == 0  # both copies went multipart
    want_tags = src.get_object_tagging(Bucket=SRC, Key="mp/copied")["TagSet"]
    for key in ("mp/copied", "mp/replica"):
        s, t = src.head_object(Bucket=SRC, Key=key), dst.head_object(Bucket=DST, Key=key)
        assert {f: t.get(f) for f in MULTIPART_KEPT} == {f: s.get(f) for f in MULTIPART_KEPT}, key
        assert t["ServerSideEncryption"] == "aws:kms" and t["SSEKMSKeyId"] == env["key"], key
        assert dst.get_object_tagging(Bucket=DST, Key=key)["TagSet"] == want_tags, key
        assert _body(dst, DST, key) == body


@pytest.mark.usefixtures("no_probe_cache")
def test_reencryption_uses_update_object_encryption_where_it_works(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS path, against the real service model (Stubber): probe on our own object, then update in place."""
    import uuid

    from botocore.stub import ANY, Stubber

    monkeypatch.setattr(s3_object.uuid, "uuid4", lambda: uuid.UUID(int=7))
    probe = f"{s3_object.PROBE_PREFIX}update-object-encryption-{uuid.UUID(int=7).hex}"
    dst = backend.client("s3", TARGET)
    key_arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    kms_ok = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}
    body = b"region-migration: does UpdateObjectEncryption work here?"
    with Stubber(dst) as stub:
        stub.add_response("list_object_versions", {}, {"Bucket": DST, "Prefix": s3_object.PROBE_PREFIX})  # leftovers
        stub.add_response(
            "put_object",
            {"VersionId": "pv1"},
            {"Bucket": DST, "Key": ANY, "Body": ANY, "ServerSideEncryption": "AES256"},
        )
        stub.add_response(
            "update_object_encryption", {}, {"Bucket": DST, "Key": ANY, "VersionId": "pv1", "ObjectEncryption": ANY}
        )
        stub.add_response(
            "list_object_versions", {"Versions": [{"Key": probe, "VersionId": "pv1"}]}, {"Bucket": DST, "Prefix": ANY}
        )
        stub.add_response("get_object", {"Body": _StreamingBody(body), **kms_ok}, {"Bucket": DST, "Key": ANY})
        stub.add_response(
            "list_object_versions", {"Versions": [{"Key": probe, "VersionId": "pv1"}]}, {"Bucket": DST, "Prefix": probe}
        )
        stub.add_response("delete_object", {}, {"Bucket": DST, "Key": probe, "VersionId": "pv1"})
        # The data object: updated in place, read back, never copied.
        stub.add_response(
            "update_object_encryption",
            {},
            {
                "Bucket": DST,
                "Key": "replica",
                "VersionId": "v1",
                "ObjectEncryption": {"SSEKMS": {"KMSKeyArn": key_arn, "BucketKeyEnabled": True}},
            },
        )
        stub.add_response(
            "head_object", {"ETag": '"e1"', **kms_ok}, {"Bucket": DST, "Key": "replica", "VersionId": "v1"}
        )
        ctx = s3_object.CopyContext(
            src=None,
            dst=dst,
            source_bucket=SRC,
            target_bucket=DST,
            kms_key_arn=key_arn,
            threshold=8 * MIB,
            transfer=None,  # type: ignore[arg-type]
            mode="catchup",
            pending_grace_s=0,
            backend_id="stubbed",
        )
        head = {"ETag": '"e1"', "VersionId": "v1", "ServerSideEncryption": "AES256", "ContentLength": 3}
        assert s3_object.ensure_key(ctx, "replica", head) == ('"e1"', "update")
        stub.assert_no_pending_responses()


class _StreamingBody:
    """Enough of botocore's StreamingBody for a Stubber response."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, *_: Any) -> bytes:
        return self.data


def _seed_then_delete(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    """Six objects copied by the migration, one object it never wrote, then two source deletes."""
    src, dst = env["src"], env["dst"]
    for i in range(6):
        _put(src, f"d/{i}", f"body {i}".encode())
    assert _sync(backend, cfg, env)["copied"] == 6
    dst.put_object(Bucket=DST, Key="d/not-ours", Body=b"someone else's")
    for key in ("d/1", "d/4"):
        src.delete_object(Bucket=SRC, Key=key)


def test_validation_verdict_follows_the_delete_mirror(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """Our objects left behind by a source delete are 'extra' (NO-GO) until the catch-up mirrors the delete;
    an object the migration never wrote is listed as 'extra_foreign', which does not block GO."""
    from tasks.validate.s3 import validate_bucket

    _seed_then_delete(backend, cfg, env)
    before = validate_bucket.fn(backend, cfg, SRC, DST, level="keys", kms_key_arn=env["key"])
    assert (before["extra"], before["foreign"]) == (2, 1)
    _sync(backend, cfg, env, mode="catchup")
    after = validate_bucket.fn(backend, cfg, SRC, DST, level="keys", kms_key_arn=env["key"])
    assert (after["missing"], after["extra"], after["different"], after["foreign"]) == (0, 0, 0, 1)
    found = set(zip(after["mismatches"]["key"], after["mismatches"]["kind"], strict=True))
    assert found == {("d/not-ours", "extra_foreign")}


def test_catchup_mirrors_source_deletes_only_onto_objects_it_wrote(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    dst = env["dst"]
    _seed_then_delete(backend, cfg, env)
    stats = _sync(backend, cfg, env, mode="catchup")
    listed = {o["Key"] for o in dst.list_objects_v2(Bucket=DST)["Contents"]}
    assert listed == {"d/0", "d/2", "d/3", "d/5", "d/not-ours"}
    versions = dst.list_object_versions(Bucket=DST, Prefix="d/")
    markers = {m["Key"] for m in versions.get("DeleteMarkers", []) if m["IsLatest"]}
    assert markers == {"d/1", "d/4"}  # recoverable: the copies are still there as older versions
    assert _versions(dst)["d/1"] == 1 and _versions(dst)["d/not-ours"] == 1
    store = CheckpointStore(backend, TARGET, TABLE)
    assert store.get(s3_plan.manifest_pk(DST), "d/1") is None
    assert _body(dst, DST, "d/not-ours") == b"someone else's"
    assert stats["deleted"] == 2 and sorted(stats["deletedKeys"]) == ["d/1", "d/4"]
    assert stats["target_only_foreign"] == 1 and stats["foreignKeys"] == ["d/not-ours"]
    assert stats["failed"] == 0
    again = _sync(backend, cfg, env, mode="catchup")
    assert again["deleted"] == 0 and again["target_only_foreign"] == 1


def test_mirror_leaves_a_target_object_that_changed_since_we_wrote_it(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src, dst = env["src"], env["dst"]
    _put(src, "x", b"v1")
    _sync(backend, cfg, env)
    dst.put_object(Bucket=DST, Key="x", Body=b"written in the target by the app")
    src.delete_object(Bucket=SRC, Key="x")
    stats = _sync(backend, cfg, env, mode="catchup")
    assert stats["deleted"] == 0 and stats["foreignKeys"] == ["x"]
    assert _body(dst, DST, "x") == b"written in the target by the app"


def test_a_replica_whose_source_key_is_gone_gets_a_delete_marker(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """Replication delivered it (no manifest record of ours), then the source key went away without a
    replicated delete (a lifecycle expiration, a delete before the rule): ours to mirror, not foreign."""
    dst = env["dst"]
    dst.put_object(Bucket=DST, Key="expired-on-source", Body=b"replicated, then expired by lifecycle")
    dst.put_object(Bucket=DST, Key="app-wrote-it", Body=b"someone else's")
    _fake_replicated(dst, {"expired-on-source"}, "REPLICA")
    stats = _sync(backend, cfg, env, mode="catchup")
    assert stats["deletedKeys"] == ["expired-on-source"] and stats["foreignKeys"] == ["app-wrote-it"]
    versions = dst.list_object_versions(Bucket=DST)
    assert [m["Key"] for m in versions["DeleteMarkers"]] == ["expired-on-source"]
    assert sorted(v["Key"] for v in versions["Versions"]) == ["app-wrote-it", "expired-on-source"]


def test_reencryption_copy_never_puts_an_older_version_back(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], no_probe_cache: None
) -> None:
    """The copy onto itself reads the current object under If-Match, never a pinned VersionId: a newer
    version that arrived after the HEAD makes it answer 412 instead of being buried under old bytes."""
    src, dst = env["src"], env["dst"]
    body = b"old bytes " * 10
    _put(src, "k", body)
    dst.put_object(Bucket=DST, Key="k", Body=body, ServerSideEncryption="AES256")
    _fake_replicated(src, {"k"})
    calls: list[dict[str, Any]] = []

    def newer_version_lands(params: dict[str, Any], **_: Any) -> None:
        source = params.get("CopySource")  # a dict, or the "bucket/key?versionId=..." string botocore makes of it
        if isinstance(source, str):
            source = {"Bucket": source.split("/", 1)[0], **({"VersionId": "?"} if "versionId=" in source else {})}
        if source and source.get("Bucket") == DST:
            calls.append(dict(source))
            if len(calls) == 1:  # replication delivers a newer version between the HEAD and the copy
                dst.put_object(Bucket=DST, Key="k", Body=b"newer bytes", ServerSideEncryption="AES256")

    dst.meta.events.register("before-parameter-build.s3.CopyObject", newer_version_lands)
    stats = _sync(backend, cfg, env, mode="catchup")
    assert calls and all("VersionId" not in c for c in calls), stats["failures"]
    assert _body(dst, DST, "k") == b"newer bytes"


def test_every_copy_carries_a_checksum_s3_computed_or_the_gap_is_reported(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    """A source written without any checksum (an old object, a tool that sends none) still gets one on the
    target: SHA-256 on a CopyObject, S3's CRC64NVME on a multipart copy; a read-back without a usable one is
    reported under notSupportedByBackend (moto 5.2.5 adds no default checksum to a multipart upload)."""
    import base64
    import hashlib

    import boto3
    from botocore.config import Config

    from tasks.validate.checksums import checksum_gap

    bare = boto3.client("s3", region_name=SOURCE, config=Config(request_checksum_calculation="when_required"))
    small, big = b"no checksum sent", os.urandom(6 * MIB)
    bare.put_object(Bucket=SRC, Key="bare/small", Body=small)
    bare.put_object(Bucket=SRC, Key="bare/big", Body=big)
    assert not s3_object.object_checksums(env["src"].head_object(Bucket=SRC, Key="bare/small", ChecksumMode="ENABLED"))

    stats = _sync(backend, cfg, env, multipart_threshold=5 * MIB)
    assert stats["copied"] == 2
    head = env["dst"].head_object(Bucket=DST, Key="bare/small", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(small).digest()).decode()
    big_head = env["dst"].head_object(Bucket=DST, Key="bare/big", ChecksumMode="ENABLED")
    gap = checksum_gap(big_head, None)
    if gap:  # measured, not assumed: the summary says so
        assert stats["notSupportedByBackend"] == {"copyChecksum": gap}
        assert "without" in gap or "bytes, not the 8" in gap
    else:
        assert big_head["ChecksumCRC64NVME"] and "notSupportedByBackend" not in stats
