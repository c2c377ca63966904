"""The one step policy, applied where each step is defined: names, retries and run names pinned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect import Task
from prefect.cache_policies import NO_CACHE

from tasks import alerts, compound, preflight, teardown
from tasks.move import checkpoints
from tasks.move import dynamodb as move_ddb
from tasks.move import s3 as move_s3
from tasks.move.s3_replication import ensure_replication
from tasks.provision import dynamodb, iam, kms, lambda_, s3, sns
from tasks.validate import dynamodb as validate_ddb
from tasks.validate import dynamodb_partition as ddb_partition
from tasks.validate import invoke
from tasks.validate import s3 as validate_s3

ROOT = Path(__file__).resolve().parents[2]

# (task, Prefect name, retries, task-run name): the table tasks/steps.py's wrappers declared before the
# policy moved onto the work functions themselves.
STEPS: list[tuple[Task[..., Any], str, int, str | None]] = [
    (preflight.check, "preflight", 1, None),
    (kms.ensure_key, "provision-kms", 3, None),
    (s3.ensure_bucket, "provision-bucket", 3, "provision-bucket-{spec.name}"),
    (dynamodb.ensure_table, "provision-table", 3, "provision-table-{spec.name}"),
    (sns.ensure_topic, "provision-topic", 3, None),
    (compound.source_alerts, "provision-source-alerts", 3, None),
    (checkpoints.ensure_checkpoint_table, "provision-checkpoints", 3, None),
    (iam.ensure_replication_role, "provision-replication-role", 3, None),
    (iam.ensure_lambda_role, "provision-validator-role", 3, None),
    (lambda_.ensure_validator, "provision-validator", 3, None),
    (compound.alarms, "provision-alarms", 3, None),
    (ensure_replication, "s3-replication", 3, "s3-replication-{source_bucket}"),
    (move_s3.plan_partitions, "s3-partitions", 3, "s3-partitions-{bucket}"),
    (move_s3.copy_partition, "s3-copy", 4, "s3-{mode}-{source_bucket}-{key_range[id]}"),
    (move_ddb.ensure_source_stream, "ddb-stream", 3, "ddb-stream-{source_table}"),
    (move_ddb.plan_segments, "ddb-segments", 3, "ddb-segments-{source_table}"),
    (move_ddb.backfill_segment, "ddb-backfill", 4, "ddb-backfill-{source_table}-{segment}"),
    (move_ddb.backfill_segments, "ddb-backfill-group", 4, "ddb-backfill-{source_table}-{group[first]}-{group[stop]}"),
    (compound.catch_up, "ddb-catch-up", 4, "ddb-catch-up-{source_table}"),
    (validate_s3.validate_bucket, "validate-bucket", 2, "validate-{source_bucket}"),
    (validate_ddb.validate_table, "validate-table", 2, "validate-{source_table}"),
    (ddb_partition.plan_table, "validate-table-plan", 2, "validate-plan-{source_table}"),
    (ddb_partition.scan_side, "validate-table-scan", 2, "validate-{side}-{plan[source]}-{group[index]}"),
    (ddb_partition.compare_bucket, "validate-table-bucket", 2, "validate-{plan[source]}-b{bucket}"),
    (ddb_partition.collect_table, "collect-table-mismatches", 2, "collect-mismatches-{plan[source]}"),
    (invoke.invoke_validator, "invoke-validator", 0, None),
    (checkpoints.record_cutover, "record-cutover", 3, None),
    (teardown.discover, "teardown-discover", 2, None),
    (teardown.run_phase, "teardown-phase", 2, "teardown-{phase}"),
    (teardown.undo_source_changes, "teardown-source-changes", 2, None),
]


@pytest.mark.parametrize(("step", "name", "retries", "run_name"), STEPS, ids=[s[1] for s in STEPS])
def test_each_step_carries_the_one_policy(step: Task[..., Any], name: str, retries: int, run_name: str | None) -> None:
    assert isinstance(step, Task)
    assert (step.name, step.retries, step.task_run_name) == (name, retries, run_name)
    assert step.retry_jitter_factor == 0.5
    assert step.cache_policy is NO_CACHE
    assert step.on_failure_hooks == [alerts.on_task_failure]
    assert callable(step.fn) and not isinstance(step.fn, Task)


def test_run_names_only_use_the_work_functions_parameters() -> None:
    """A run-name template names parameters of the function it decorates (a renamed one would fail at run time)."""
    import inspect
    import string

    for step, _name, _retries, run_name in STEPS:
        if run_name is None:
            continue
        fields = {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(run_name) if f}
        assert fields <= set(inspect.signature(step.fn).parameters), (run_name, step.fn)


def test_digest_stays_free_of_prefect() -> None:
    """digest.py is zipped into the Lambda, whose runtime has no Prefect."""
    code = "import sys, tasks.validate.digest; assert 'prefect' not in sys.modules, 'prefect imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
