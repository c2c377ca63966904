"""Which backfill path each store takes, and why: pure, so the plan, the flow and the report choose the same way.

Small stores are copied by this project's own partitioned tasks (client copy, parallel scan). Big ones are cheaper
and faster server-side: an S3 Batch Replication job for a bucket's existing objects, an export to S3 plus
ImportTable for a table. The thresholds are settings (config/settings.py) and migrate's CLI flags; `None` is off,
0 sends every store down the server-side path (how the tests reach it on an emulator). What the backend or the
store cannot serve (no Batch Operations, an LSI, the import quota) falls back to the client path, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

S3_CLIENT_COPY = "client-copy"
S3_BATCH_REPLICATION = "batch-replication"
DDB_SCAN = "scan"
DDB_EXPORT_IMPORT = "export-import"


@dataclass(frozen=True)
class PathChoice:
    """The path a store's backfill takes, and the reason in words (printed by the plan, kept in the report)."""

    path: str
    reason: str


def _over(size: int | None, threshold: int | None, unit: str) -> str | None:
    """Why the size calls for the server-side path, or None when it does not (or the threshold is off)."""
    if threshold is None:
        return None
    if threshold == 0:
        return "threshold 0: every store"
    if size is not None and size >= threshold:
        return f"{size:,} {unit} >= threshold {threshold:,}"
    return None


def _under(size: int | None, threshold: int | None, unit: str) -> str:
    """Why the size stays on the client path, in words."""
    if threshold is None:
        return "off"
    return f"{f'{size:,}' if size is not None else 'unknown'} {unit} < {threshold:,}"


@dataclass(frozen=True)
class _Paths:
    """A store kind's two paths and how each is said."""

    unit: str
    client: str
    client_words: str
    server: str
    server_words: str
    threshold_words: str

    def choose(self, size: int | None, threshold: int | None, blocked: str | None) -> PathChoice:
        why = _over(size, threshold, self.unit)
        if why is None:
            return PathChoice(
                self.client, f"{self.client_words}: {self.threshold_words} {_under(size, threshold, self.unit)}"
            )
        if blocked:
            return PathChoice(self.client, f"{self.client_words}: {why}, but {blocked}")
        return PathChoice(self.server, f"{self.server_words}: {why}")


_S3 = _Paths("objects", S3_CLIENT_COPY, "client copy", S3_BATCH_REPLICATION, "S3 Batch Replication", "batch threshold")
_DDB = _Paths("bytes", DDB_SCAN, "parallel scan", DDB_EXPORT_IMPORT, "export to S3 + ImportTable", "import threshold")


def s3_path(objects: int | None, threshold: int | None, blocked: str | None = None) -> PathChoice:
    """The path of a bucket of `objects` objects (None: not counted); `blocked` says why Batch Replication cannot
    serve it here (e.g. the backend has no S3 Batch Operations), which makes a big bucket fall back to client copy."""
    return _S3.choose(objects, threshold, blocked)


def table_path(size_bytes: int | None, threshold: int | None, blocked: str | None = None) -> PathChoice:
    """The path of a table of `size_bytes` (None: unknown); `blocked` says why export/import cannot serve it (an
    LSI, over the import quota, the backend refuses exports), which makes it fall back to the parallel scan."""
    return _DDB.choose(size_bytes, threshold, blocked)
