"""The migration report's typed sections: what the summaries build and what the renderers, the table artifact
and the GO/NO-GO rule read, with the JSON keys as they are in the report (camelCase by alias, the
snake_case stat keys such as `bytes_copied` and `lag_seconds` as they are).

Two kinds of section:
- the report's own (copy and segment summaries, status, verdict, validation counts, configuration
  differences): every field declared;
- read-backs passed through as measured (provisioning's describe results, the stream catch-up, each
  validator row): the fields the report reads are declared, the rest is kept as measured (`extra="allow"`),
  because tasks/provision and tasks/validate own those keys and the report only forwards them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Gaps = dict[str, str] | list[str]
"""notSupportedByBackend: a map (what -> why) from most read-backs, a plain list from the replication rule."""


class Declared(BaseModel):
    """A section whose every key is declared (an unknown key is an error in the making, not a pass-through)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        """The JSON form: aliases, and only the keys that were set (optional sections stay absent)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Measured(BaseModel):
    """A read-back passed through as measured: the fields the report reads are declared, the rest kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def given(self) -> bool:
        """True when the read-back had any key at all (an empty dict means nothing was measured)."""
        return bool(self.model_fields_set or self.model_extra)


# --- the data path's summaries (tasks/report/build.py summarize_copies / summarize_segments) ---


class CopyFailure(Measured):
    key: str | None = None
    error: str | None = None


class Reencryption(Declared):
    update_object_encryption: int = Field(0, alias="UpdateObjectEncryption")
    copy_onto_itself: int = Field(0, alias="copyOntoItself")
    update_unsupported: str = Field("", alias="updateObjectEncryptionUnsupported")


class BatchJob(Measured):
    """The S3 Batch Replication job of a bucket's backfill, as DescribeJob last said (tasks/move/s3_batch.py)."""

    job_id: str | None = Field(None, alias="jobId")
    status: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0


class CopySummary(Declared):
    """An S3 backfill or catch-up, added up over its partitions (or only `error` when its listing failed); a
    backfill also names its path (tasks/paths.py) and why, and the Batch Replication job when one ran."""

    seen: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    vanished: int = 0
    bytes_seen: int = 0
    bytes_copied: int = 0
    pending_replication: int = 0
    adopted: int = 0
    reencrypted_update: int = 0
    reencrypted_copy: int = 0
    deleted: int = 0
    target_only_foreign: int = 0
    partitions: int = 0
    failed_partitions: int = Field(0, alias="failedPartitions")
    duration_seconds: float = Field(0.0, alias="durationSeconds")
    objects_per_second: float = Field(0.0, alias="objectsPerSecond")
    bytes_per_second: float = Field(0.0, alias="bytesPerSecond")
    failures: list[CopyFailure] = []
    deleted_keys: list[str] = Field([], alias="deletedKeys")
    foreign_keys: list[str] = Field([], alias="foreignKeys")
    reencryption: Reencryption | None = None
    not_supported: dict[str, str] | None = Field(None, alias="notSupportedByBackend")
    error: str | None = None
    path: str | None = None
    path_reason: str | None = Field(None, alias="pathReason")
    job: BatchJob | None = None
    reencrypt_job: BatchJob | None = Field(None, alias="reencryptJob")  # tasks/move/s3_batch_reencrypt.py


class ExportImport(Measured):
    """The export + ImportTable path as DescribeExport/DescribeImport measured it (passed through)."""

    export_arn: str | None = Field(None, alias="exportArn")
    import_arn: str | None = Field(None, alias="importArn")
    import_errors: int = Field(0, alias="importErrors")


class SegmentSummary(Declared):
    """A DynamoDB backfill, added up over its scan segments."""

    scanned: int = 0  # items read from the source
    written: int = 0  # items written to the target (batch-write, retried with jitter)
    pages: int = 0  # scan pages
    retries: int = 0  # unprocessed items re-sent
    bytes: int = 0  # size of what was written
    segments: int = 0  # parallel scan segments (TotalSegments)
    task_runs: int | None = Field(None, alias="taskRuns")  # the backfill's task runs (groups of segments)
    failed_segments: int = Field(0, alias="failedSegments")
    duration_seconds: float = Field(0.0, alias="durationSeconds")
    items_per_second: float = Field(0.0, alias="itemsPerSecond")
    read_rate: float | None = Field(None, alias="readRate")
    consumed_read_units: float | None = Field(None, alias="consumedReadUnits")
    paced_seconds: float | None = Field(None, alias="pacedSeconds")
    not_supported: dict[str, str] | None = Field(None, alias="notSupportedByBackend")
    path: str | None = None  # tasks/paths.py: scan or export-import
    path_reason: str | None = Field(None, alias="pathReason")
    export_import: ExportImport | None = Field(None, alias="exportImport")


class StreamCatchUp(Measured):
    """A table's stream replay as tasks/move measured it (passed through)."""

    records: int | None = None
    lag_seconds: int | float | None = None
    retention_warning: str | None = None
    error: str | None = None


# --- provisioning read-backs (passed through) ---


class ReadBack(Measured):
    name: str | None = None
    arn: str | None = None
    alias: str | None = None
    region: str | None = None
    created: bool | None = None
    repaired: list[str] | None = None
    not_supported: Gaps | None = Field(None, alias="notSupportedByBackend")

    def label(self) -> str:
        """How a person names it: the alias, else the name."""
        return self.alias or self.name or ""


class LambdaFunction(ReadBack):
    dead_letter_target: str | None = Field(None, alias="deadLetterTarget")


class LifecycleRule(Measured):
    """tasks/provision/s3.summarize_lifecycle's view of one rule."""

    id: str | None = None
    status: str | None = None
    expiration_days: int | None = Field(None, alias="expirationDays")
    noncurrent_expiration_days: int | None = Field(None, alias="noncurrentExpirationDays")
    abort_multipart_days: int | None = Field(None, alias="abortMultipartDays")


class Replication(ReadBack):
    bucket: str | None = None
    rule_status: str | None = Field(None, alias="ruleStatus")
    source_changed: list[str] | None = Field(None, alias="sourceChanged")


class SourceStream(Measured):
    source_changed: list[str] | None = Field(None, alias="sourceChanged")


class Capacity(Measured):
    billing_mode: str | None = Field(None, alias="billingMode")
    read_capacity: int | None = Field(None, alias="readCapacity")
    write_capacity: int | None = Field(None, alias="writeCapacity")
    scaling_factor: int | float | None = Field(None, alias="scalingFactor")


class Ttl(Measured):
    attribute: str | None = None
    status: str | None = None


class TtlDrift(Measured):
    message: str | None = None
    target_may_delete: bool | None = Field(None, alias="targetMayDelete")


# --- validation (tasks/validate, composed by flows/parts.run_validation) ---


class Check(Measured):
    """One validated pair's counts (a bucket's or a table's row; passed through)."""

    source: str | None = None
    missing: int | str = "?"
    extra: int | str = "?"
    different: int | str = "?"
    encryption: int | None = None
    foreign: int | None = None
    error: str | None = None
    not_supported: Gaps | None = Field(None, alias="notSupportedByBackend")


class BucketCheck(Check):
    source_objects: int | str = Field("?", alias="sourceObjects")
    target_objects: int | str = Field("?", alias="targetObjects")


class TableCheck(Check):
    source_items: int | str = Field("?", alias="sourceItems")
    target_items: int | str = Field("?", alias="targetItems")


class LambdaRun(Measured):
    """What the validator Lambda's invocation measured (tasks/invoke)."""

    executed: bool | None = None  # None: the outcome is unknown
    ok: bool | None = None
    outcome: str | None = None
    summary: str | None = None
    detail: str | None = None
    function_error: str | None = Field(None, alias="functionError")


class Mismatches(Declared):
    missing: int = 0
    extra: int = 0
    different: int = 0
    encryption: int | None = None

    def text(self) -> str:
        """For people: '0 missing, 0 extra, 0 different' (and the encryption count when measured)."""
        out = f"{self.missing} missing, {self.extra} extra, {self.different} different"
        return out + (f", {self.encryption} not under the migration key" if self.encryption is not None else "")


class Validation(Measured):
    """The validation's counts and rows; open because the validate flow adds its header (batch, regions,
    reportPath) to the same result."""

    level: str | None = None
    passed: bool = False
    mismatches: Mismatches = Mismatches()
    errors: list[str] = []
    mismatch_file: str | None = Field(None, alias="mismatchFile")
    buckets: list[BucketCheck] = []
    tables: list[TableCheck] = []
    lambda_: LambdaRun | None = Field(None, alias="lambda")


# --- the report's resources and top level ---


class Store(ReadBack):
    """What a bucket and a table row share: the source it mirrors, a step's error, the measured status."""

    source: str | None = None
    error: str | None = None
    status: str | None = None


class PlanCount(Declared):
    """What the backfill's planning counted while listing the source in parallel (tasks/move/s3_listing.py)."""

    objects: int = 0
    bytes: int = 0
    partitions: int = 0


class Bucket(Store):
    """A target bucket's read-back with what moved into it, its validation and its measured status."""

    lifecycle: list[LifecycleRule] | str | None = None
    replication: Replication | None = None
    plan: PlanCount | None = None
    backfill: CopySummary | None = None
    catch_up: CopySummary | None = Field(None, alias="catchUp")
    validation: BucketCheck | None = None


class Table(Store):
    """A target table's read-back with its backfill, stream catch-up, validation and measured status."""

    read_capacity: int | None = Field(None, alias="readCapacity")
    write_capacity: int | None = Field(None, alias="writeCapacity")
    capacity_from: Capacity | None = Field(None, alias="capacityFrom")
    ttl: Ttl | None = None
    ttl_from: str | None = Field(None, alias="ttlFrom")
    source_ttl: str | None = Field(None, alias="sourceTtl")
    ttl_drift: TtlDrift | None = Field(None, alias="ttlDrift")
    stream: SourceStream | None = None
    backfill: SegmentSummary | None = None
    catch_up: StreamCatchUp | None = Field(None, alias="catchUp")
    validation: TableCheck | None = None

    def lag(self) -> float:
        return float((self.catch_up.lag_seconds if self.catch_up else 0) or 0)


class Resources(Measured):
    kms: ReadBack | None = None
    sns: ReadBack | None = None
    source_region: dict[str, ReadBack] = Field({}, alias="sourceRegion")
    checkpoints: ReadBack | None = None
    iam: dict[str, ReadBack] = {}
    lambda_: LambdaFunction | None = Field(None, alias="lambda")
    alarms: list[ReadBack] = []
    dashboard: ReadBack | None = None
    s3_buckets: list[Bucket] = Field([], alias="s3Buckets")
    dynamodb_tables: list[Table] = Field([], alias="dynamodbTables")

    def singletons(self) -> list[tuple[str, ReadBack]]:
        """The one-per-migration resources, keyed as in the report (kms, sns, lambda, checkpoints, dashboard)."""
        items = (
            ("kms", self.kms),
            ("sns", self.sns),
            ("lambda", self.lambda_),
            ("checkpoints", self.checkpoints),
            ("dashboard", self.dashboard),
        )
        return [(k, v) for k, v in items if v is not None and v.given()]


class Status(Declared):
    ok: bool
    problems: list[str]


class Verdict(Declared):
    decision: str
    reasons: list[str]
    max_lag_seconds: float | None = Field(None, alias="maxLagSeconds")


class ConfigDifference(Declared):
    setting: str
    source: str
    target: str


class EstimateCheck(Declared):
    """One store's estimate (made before it moved, tasks/estimate.py) beside what the run measured (None: not
    measured), so the plan's figures can be checked."""

    store: str
    kind: str
    path: str
    cost: str
    estimated: dict[str, float | int | None]
    measured: dict[str, float | int | None]


class Estimate(Declared):
    stores: list[EstimateCheck] = []
    total: dict[str, Any] = {}
    prices: str = ""


class Report(Measured):
    """The migration report (tasks/report/assemble.py); open at the top for keys the flow adds."""

    migration_batch: str = Field("", alias="migrationBatch")
    source_region: str = Field("", alias="sourceRegion")
    target_region: str = Field("", alias="targetRegion")
    environment_suffix: str = Field("", alias="environmentSuffix")
    backend: str = ""
    account: str | None = None
    started_at: str = Field("", alias="startedAt")
    finished_at: str = Field("", alias="finishedAt")
    duration_seconds: int | float = Field(0.0, alias="durationSeconds")
    resources: Resources = Resources()
    source_changes: list[str] = Field([], alias="sourceChanges")
    validation: Validation | None = None
    configuration_differences: list[ConfigDifference] = Field([], alias="configurationDifferences")
    status: Status | None = None
    verdict: Verdict | None = None
    next_steps: list[str] = Field([], alias="nextSteps")
    errors: list[str] = []
    preflight_warnings: list[str] = Field([], alias="preflightWarnings")
    estimate: Estimate | None = None
