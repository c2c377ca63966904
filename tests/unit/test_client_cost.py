"""Client CPU per copied object: what our clients skip of botocore's per-request work, with the same results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import botocore.parsers
import botocore.utils
import pytest

from tasks.aws import Backend, fast_timestamp

STAMPS = [
    "2026-12-01T14:35:12.000Z",  # S3 ListObjectsV2 / CopyObjectResult LastModified
    "2026-12-01T14:35:12Z",
    "2026-12-01T14:35:12.123456Z",
    "2026-12-01T14:35:12.5Z",
    "Tue, 01 Dec 2026 14:35:12 GMT",  # Last-Modified header
    "2026-12-01T14:35:12+01:00",  # not UTC: botocore's own parser
    "1764000000.123",  # epoch (JSON protocols): botocore's own parser
    1764000000,
]


@pytest.mark.parametrize("value", STAMPS)
def test_fast_timestamp_gives_botocores_instant(value: Any) -> None:
    ours, theirs = fast_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


def test_fast_timestamp_refuses_what_botocore_refuses() -> None:
    with pytest.raises(ValueError):
        fast_timestamp("not a time")


def test_backend_clients_read_s3_timestamps_without_dateutil(backend: Backend, monkeypatch: Any) -> None:
    """A listing, a copy and a HEAD (the copy loop's calls) never reach dateutil, and read UTC instants."""
    slow: list[Any] = []
    default = botocore.parsers.DEFAULT_TIMESTAMP_PARSER  # what a parser without our timestamp_parser uses
    monkeypatch.setattr(botocore.parsers, "DEFAULT_TIMESTAMP_PARSER", lambda v: slow.append(v) or default(v))
    s3 = backend.client("s3", "us-east-1")
    s3.create_bucket(Bucket="cost")
    s3.put_object(Bucket="cost", Key="k", Body=b"x")
    listed = s3.list_objects_v2(Bucket="cost")["Contents"][0]["LastModified"]
    copied = s3.copy_object(Bucket="cost", Key="k2", CopySource={"Bucket": "cost", "Key": "k"})
    head = s3.head_object(Bucket="cost", Key="k")["LastModified"]
    assert slow == []
    stamps = [listed, copied["CopyObjectResult"]["LastModified"], head]
    assert all(t.utcoffset() == timedelta(0) for t in stamps)
    assert abs(head - listed) < timedelta(seconds=1)  # the header has whole seconds, the listing milliseconds
