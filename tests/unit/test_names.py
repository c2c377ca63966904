"""One source for the names the pipeline derives: report paths and checkpoint keys."""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
from pathlib import Path

from config.model import MigrationConfig
from tasks.names import report_path

ROOT = Path(__file__).resolve().parents[2]


def test_report_paths_are_the_ones_the_flows_always_wrote(cfg: MigrationConfig) -> None:
    tail = f"{cfg.migration_batch}-{cfg.environment_suffix}.json"
    assert report_path("migration-report", cfg) == Path(f"reports/migration-report-{tail}")
    assert report_path("sync", cfg) == Path(f"reports/sync-{tail}")
    assert report_path("cutover", cfg) == Path(f"reports/cutover-{tail}")
    assert report_path("validation", cfg) == Path(f"reports/validation-{tail}")
    assert report_path("sync", cfg, "/tmp/mine.json") == Path("/tmp/mine.json")
    assert report_path("sync", cfg, "") == Path(f"reports/sync-{tail}")


def test_no_flow_builds_a_report_path_itself() -> None:
    built = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "flows").glob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"""Path\(.*["']reports|f["']reports/""", line)
    ]
    assert built == []


def test_checkpoint_keys_keep_their_stored_format() -> None:
    """Existing checkpoint tables hold these exact strings: a resumed run must find its records."""
    from tasks.move import keys

    assert keys.manifest_pk("b-eu") == "s3#b-eu"
    assert keys.range_pk("b-eu") == "s3range#b-eu"
    assert keys.range_sk(None, "k") == "range#" + hashlib.sha256(b'[null, "k"]').hexdigest()
    assert (keys.versioning_pk("b"), keys.VERSIONING_SK) == ("s3src#b", "versioning")
    assert (keys.table_pk("t"), keys.STREAM_SK, keys.PLAN_SK) == ("ddb#t", "stream", "plan")
    assert keys.segment_sk(3, 12) == "segment#12#03"
    assert keys.shard_sk("arn:aws:dynamodb:r:1:table/t/stream/2026-12-01T00:00:00.000", "shardId-1") == (
        "shard#2026-12-01T00:00:00.000#shardId-1"
    )
    assert keys.shard_sk("x/L", "s").startswith(keys.SHARD_PREFIX)
    assert (keys.LOCK_PK, keys.SYNC_LOCK, keys.CUTOVER_PK, keys.RESULT_PK) == ("lock", "sync", "cutover", "validator")


def test_one_definition_of_every_checkpoint_key() -> None:
    """The validator Lambda keeps its own literal (its zip ships handler.py and digest.py only): it must agree,
    and so must the IAM condition that lets the validator write that partition only."""
    import importlib.util

    from tasks.move import keys
    from tasks.provision import iam

    spec = importlib.util.spec_from_file_location("handler_under_test", ROOT / "lambda" / "validator" / "handler.py")
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    assert handler.RESULT_PK == keys.RESULT_PK
    assert "RESULT_PK" in inspect.getsource(iam.lambda_role_policies)
    literal = re.compile(r"""["'](s3#|s3range#|s3src#|ddb#|segment#|shard#|range#)|["']pk["']:\s*\{["']S["']:\s*["']""")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for layer in ("flows", "tasks", "lambda")
        for p in sorted((ROOT / layer).rglob("*.py"))
        if p != ROOT / "tasks" / "move" / "keys.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []


def test_keys_module_needs_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "tasks" / "move" / "keys.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "hashlib", "json"}


def test_topic_arn_is_built_once_in_the_regions_partition(cfg: MigrationConfig) -> None:
    from tasks.names import alert_topic_arn, resource_names, topic_arn

    cn = cfg.model_copy(update={"target_region": "cn-north-1"})
    assert alert_topic_arn(cn, "111122223333") == f"arn:aws-cn:sns:cn-north-1:111122223333:{resource_names(cn).topic}"
    assert topic_arn("us-gov-west-1", "1", "t") == "arn:aws-us-gov:sns:us-gov-west-1:1:t"
    built = re.compile(r"""arn\(\s*["']sns["']|["']arn:[^"']*:sns:""")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for layer in ("flows", "tasks", "blocks", "config")
        for p in sorted((ROOT / layer).rglob("*.py"))
        if p != ROOT / "tasks" / "names.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if built.search(line) and "examples=" not in line  # a UI field's example value is no ARN we build
    ]
    assert found == []
