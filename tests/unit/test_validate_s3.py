"""S3 validation against moto in-process: exactly the seeded differences, nothing more."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.names import resource_names
from tasks.validate.s3 import Checksum, checksum_verdict, object_checksums, s3_frame, validate_bucket

SRC = "analytics-raw-data"
PART = 5 * 1024 * 1024


def multipart_put(s3: Any, bucket: str, key: str, parts: list[bytes]) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for i, body in enumerate(parts, start=1):
        resp = s3.upload_part(Bucket=bucket, Key=key, PartNumber=i, UploadId=upload, Body=body)
        done.append({"PartNumber": i, "ETag": resp["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})


@pytest.fixture
def buckets(backend: Backend, cfg: MigrationConfig) -> tuple[str, str]:
    """Source in us-east-1, KMS-encrypted target in eu-west-1, same data but for one seeded case per kind."""
    src = backend.client("s3", cfg.source_region)
    dst = backend.client("s3", cfg.target_region)
    target = cfg.target_name(SRC)
    kms = backend.client("kms", cfg.target_region)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=resource_names(cfg).kms_alias, TargetKeyId=key_arn)
    src.create_bucket(Bucket=SRC)
    dst.create_bucket(Bucket=target, CreateBucketConfiguration={"LocationConstraint": cfg.target_region})
    dst.put_bucket_encryption(
        Bucket=target,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    for i in range(20):
        body = f"object {i} ".encode() * (i + 1)
        src.put_object(Bucket=SRC, Key=f"data/{i:03d}.txt", Body=body)
        dst.put_object(Bucket=target, Key=f"data/{i:03d}.txt", Body=body)
    src.put_object(Bucket=SRC, Key="empty/", Body=b"")
    dst.put_object(Bucket=target, Key="empty/", Body=b"")
    # Multipart on the source; a plain copy on the target: ETags and checksums cannot be compared.
    big = [b"a" * PART, b"b" * 1024]
    multipart_put(src, SRC, "big/multipart.bin", big)
    dst.put_object(Bucket=target, Key="big/multipart.bin", Body=b"".join(big))
    # Seeded differences.
    src.put_object(Bucket=SRC, Key="only-in-source.txt", Body=b"lost")
    dst.put_object(Bucket=target, Key="only-in-target.txt", Body=b"stray")
    src.put_object(Bucket=SRC, Key="changed-same-size.txt", Body=b"hello world")
    dst.put_object(Bucket=target, Key="changed-same-size.txt", Body=b"hello WORLD")
    src.put_object(Bucket=SRC, Key="changed-no-common-checksum.txt", Body=b"abcdef", ChecksumAlgorithm="SHA256")
    dst.put_object(Bucket=target, Key="changed-no-common-checksum.txt", Body=b"abcdeF", ChecksumAlgorithm="CRC32")
    src.put_object(Bucket=SRC, Key="size.txt", Body=b"12345")
    dst.put_object(Bucket=target, Key="size.txt", Body=b"123456")
    return SRC, target


def test_full_finds_exactly_the_seeded_differences(
    backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    head = backend.client("s3", cfg.target_region).head_object(Bucket=target, Key="data/000.txt")
    assert head["ServerSideEncryption"] == "aws:kms"  # the target really is KMS-encrypted

    result = validate_bucket.fn(backend, cfg, source, target, level="full")
    mism = result.pop("mismatches")
    found = {(k, kind): d for k, kind, d in zip(mism["key"], mism["kind"], mism["detail"], strict=True)}
    assert set(found) == {
        ("only-in-source.txt", "missing_in_target"),
        ("only-in-target.txt", "extra_in_target"),
        ("changed-same-size.txt", "different"),
        ("changed-no-common-checksum.txt", "different"),
        ("size.txt", "different"),
    }
    assert found[("size.txt", "different")] == "size: 5 != 6"
    assert "checksum CRC32" in found[("changed-same-size.txt", "different")]
    assert "sha256" in found[("changed-no-common-checksum.txt", "different")]
    assert result["sourceObjects"] == 26 and result["targetObjects"] == 26
    assert (result["missing"], result["extra"], result["different"]) == (1, 1, 3)
    # Contents checked for every key on both sides with equal size: 20 data + empty + big + 2 changed.
    assert result["checked"] == 24
    # The multipart object and the no-common-checksum pair were streamed; the rest proven by checksums.
    assert result["streamHashed"] == 2
    assert result["checksumCompared"] == 22
    assert result["bytesSource"] - result["bytesTarget"] == len(b"lost") - len(b"stray") - 1


def test_keys_level_sees_sizes_but_reads_no_content(
    backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str]
) -> None:
    result = validate_bucket.fn(backend, cfg, *buckets, level="keys")
    mism = result.pop("mismatches")
    assert set(zip(mism["key"], mism["kind"], strict=True)) == {
        ("only-in-source.txt", "missing_in_target"),
        ("only-in-target.txt", "extra_in_target"),
        ("size.txt", "different"),
    }
    assert result["checked"] == 0


def test_identical_buckets_are_clean(backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str]) -> None:
    source, _ = buckets
    result = validate_bucket.fn(backend, cfg, source, source, level="full")
    # Same bytes everywhere; only the encryption differs (the source is not under the migration key).
    assert set(result["mismatches"]["kind"]) == {"encryption"}
    assert (result["missing"], result["extra"], result["different"]) == (0, 0, 0)
    assert result["encryption"] == result["checked"] == result["sourceObjects"]


def test_s3_frame_full_streams_sha256(backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str]) -> None:
    frame = s3_frame(backend, cfg.source_region, buckets[0], "full")
    row = frame.set_index("key").loc["big/multipart.bin"]
    assert row["size"] == PART + 1024
    assert row["sha256"] == hashlib.sha256(b"a" * PART + b"b" * 1024).hexdigest()
    assert list(s3_frame(backend, cfg.source_region, buckets[0], "keys").columns) == ["key", "size"]


def test_checksum_rules() -> None:
    full = {"CRC32": Checksum("CRC32", "AAAA", "FULL_OBJECT")}
    assert checksum_verdict(full, {"CRC32": Checksum("CRC32", "AAAA", "FULL_OBJECT")}) == (True, "checksum CRC32")
    assert checksum_verdict(full, {"CRC32": Checksum("CRC32", "BBBB", "FULL_OBJECT")})[0] is False
    comp = {"SHA256": Checksum("SHA256", "x-2", "COMPOSITE")}
    assert checksum_verdict(comp, {"SHA256": Checksum("SHA256", "x-2", "COMPOSITE")})[0] is True
    # Different composite values may be the same bytes cut into different parts: undecided, stream.
    assert checksum_verdict(comp, {"SHA256": Checksum("SHA256", "y-3", "COMPOSITE")})[0] is None
    assert checksum_verdict(full, comp)[0] is None
    assert checksum_verdict({}, full)[0] is None
    assert object_checksums({"ChecksumCRC32": "abc=-3"})["CRC32"].type == "COMPOSITE"
    assert object_checksums({"ChecksumCRC32": "abc=", "ChecksumType": "FULL_OBJECT"})["CRC32"].type == "FULL_OBJECT"


def test_full_lists_every_object_not_under_the_migration_key(
    backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str]
) -> None:
    """Same bytes, wrong encryption (an SSE-S3 replica, or another KMS key): its own mismatch kind."""
    source, target = buckets
    dst = backend.client("s3", cfg.target_region)
    other = backend.client("kms", cfg.target_region).create_key()["KeyMetadata"]["Arn"]
    body = f"object {3} ".encode() * 4
    dst.put_object(Bucket=target, Key="data/003.txt", Body=body, ServerSideEncryption="AES256")
    dst.put_object(
        Bucket=target,
        Key="data/004.txt",
        Body=f"object {4} ".encode() * 5,
        SSEKMSKeyId=other,
        ServerSideEncryption="aws:kms",
    )
    result = validate_bucket.fn(backend, cfg, source, target, level="full")
    mism = result.pop("mismatches")
    rows = mism[mism["kind"] == "encryption"]
    assert rows["key"].tolist() == ["data/003.txt", "data/004.txt"]
    assert "AES256" in rows["detail"].iloc[0] and other in rows["detail"].iloc[1]
    assert result["encryption"] == 2 and result["different"] == 3  # contents still equal: not "different"
    assert "data/003.txt" not in set(mism.loc[mism["kind"] == "different", "key"])


def _gets(*clients: Any) -> dict[str, int]:
    """GetObject calls per client role, counted through botocore's event hooks."""
    counts = {"source": 0, "target": 0}
    for role, client in zip(counts, clients, strict=True):

        def hook(role: str = role, **_: Any) -> None:
            counts[role] += 1

        client.meta.events.register("before-call.s3.GetObject", hook)
    return counts


@pytest.fixture
def pairs(backend: Backend, cfg: MigrationConfig) -> tuple[str, str]:
    """Plain buckets (no KMS) for content checks: source in us-east-1, target in eu-west-1."""
    target = cfg.target_name(SRC)
    backend.client("s3", cfg.source_region).create_bucket(Bucket=SRC)
    backend.client("s3", cfg.target_region).create_bucket(
        Bucket=target, CreateBucketConfiguration={"LocationConstraint": cfg.target_region}
    )
    return SRC, target


def test_stored_checksums_prove_content_without_reading_it(
    backend: Backend, cfg: MigrationConfig, pairs: tuple[str, str]
) -> None:
    src, dst = backend.client("s3", cfg.source_region), backend.client("s3", cfg.target_region)
    for i in range(6):
        body = f"same {i}".encode() * 10
        src.put_object(Bucket=pairs[0], Key=f"k{i}", Body=body, ChecksumAlgorithm="SHA256")
        dst.put_object(Bucket=pairs[1], Key=f"k{i}", Body=body, ChecksumAlgorithm="SHA256")
    gets = _gets(src, dst)
    result = validate_bucket.fn(backend, cfg, *pairs, level="full")
    assert gets == {"source": 0, "target": 0}
    assert (result["checksumCompared"], result["streamHashed"], result["streamedBytes"]) == (6, 0, 0)
    assert result["different"] == 0


def test_source_without_checksum_is_streamed_alone_against_the_targets_stored_one(
    backend: Backend, cfg: MigrationConfig, pairs: tuple[str, str]
) -> None:
    """Half the bytes of streaming both: the source is hashed with the target's algorithm (the SHA-256 our
    copy asks for), compared with the target's stored value; a corrupted target (same size, other bytes,
    written with its own checksum) is `different`."""
    import boto3
    from botocore.config import Config

    no_checksum = Config(request_checksum_calculation="when_required")
    bare = boto3.client("s3", region_name=cfg.source_region, config=no_checksum)
    src, dst = backend.client("s3", cfg.source_region), backend.client("s3", cfg.target_region)
    for i in range(5):
        body = f"old object {i}".encode() * 20
        bare.put_object(Bucket=pairs[0], Key=f"k{i}", Body=body)
        dst.put_object(Bucket=pairs[1], Key=f"k{i}", Body=body, ChecksumAlgorithm="SHA256")
    bare.put_object(Bucket=pairs[0], Key="corrupt", Body=b"good bytes")
    dst.put_object(Bucket=pairs[1], Key="corrupt", Body=b"evil bytes", ChecksumAlgorithm="SHA256")
    gets = _gets(src, dst)
    result = validate_bucket.fn(backend, cfg, *pairs, level="full")
    mism = result.pop("mismatches")
    mism = mism[mism["kind"] != "encryption"]  # plain buckets: not under the migration key
    assert list(zip(mism["key"], mism["kind"], strict=True)) == [("corrupt", "different")]
    assert "sha256 of the source" in mism["detail"].iloc[0]
    assert gets == {"source": 6, "target": 0}
    assert (result["streamHashed"], result["streamedOneSide"], result["checksumCompared"]) == (6, 6, 0)
    assert result["streamedBytes"] == sum(len(f"old object {i}".encode() * 20) for i in range(5)) + 10


def test_a_checksum_that_cannot_be_its_algorithm_proves_nothing_and_is_reported(
    backend: Backend, cfg: MigrationConfig, pairs: tuple[str, str]
) -> None:
    """moto 5.2.5 without the AWS CRT stores a 4-byte CRC-32 under the name CRC64NVME: equal such values must
    not pass for a 64-bit proof. The pair is streamed instead and the backend's gap reported."""
    from tasks.validate.checksums import Checksum, malformed

    assert malformed(Checksum("CRC64NVME", "SNfwYw==", "FULL_OBJECT")) == (
        "CRC64NVME values are 4 bytes, not the 8 of that algorithm"
    )
    assert malformed(Checksum("CRC32", "SNfwYw==", "FULL_OBJECT")) == ""
    src, dst = backend.client("s3", cfg.source_region), backend.client("s3", cfg.target_region)
    src.put_object(Bucket=pairs[0], Key="k", Body=b"same bytes", ChecksumAlgorithm="SHA256")
    dst.put_object(Bucket=pairs[1], Key="k", Body=b"same bytes", ChecksumAlgorithm="SHA256")

    def fake_crc64(parsed: dict[str, Any], **_: Any) -> None:  # as moto answers a CRC64NVME upload here
        parsed.pop("ChecksumSHA256", None)
        parsed["ChecksumCRC64NVME"] = "SNfwYw=="

    for client in (src, dst):
        client.meta.events.register("after-call.s3.HeadObject", fake_crc64)
    result = validate_bucket.fn(backend, cfg, *pairs, level="full")
    assert result["checksumCompared"] == 0 and result["streamHashed"] == 1 and result["different"] == 0
    assert result["notSupportedByBackend"] == {
        "checksum CRC64NVME": "CRC64NVME values are 4 bytes, not the 8 of that algorithm"
    }


def test_partitioned_validation_gives_the_whole_bucket_counts_in_bounded_tasks(
    backend: Backend, cfg: MigrationConfig, buckets: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow's path: the copy's key ranges, one validate_partition each, mismatches written to the
    checkpoint table where found and read back once; same counts and rows as one whole-bucket task, and no
    task holds more than a chunk of its range at once."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from tasks.move.checkpoints import ensure_checkpoint_table
    from tasks.move.s3 import plan_partitions
    from tasks.validate import s3_partition

    source, target = buckets
    dst = backend.client("s3", cfg.target_region)

    moto_s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # seeded through moto's backend: 20x faster than puts
    for i in range(600):
        body = f"bulk {i}".encode()
        moto_s3.put_object(source, f"bulk/{i:05d}", body)
        moto_s3.put_object(target, f"bulk/{i:05d}", b"X" + body[1:] if i % 200 == 7 else body)
    dst.put_object(Bucket=target, Key="zzz-after-the-last-source-key", Body=b"stray")
    ensure_checkpoint_table.fn(backend, cfg.target_region, resource_names(cfg).checkpoint_table, cfg.tags(), None)

    whole = validate_bucket.fn(backend, cfg, source, target, level="full")
    whole_rows = whole.pop("mismatches")

    listed: list[int] = []
    real_frame = s3_partition.listing_frame

    def spy(*args: Any, **kwargs: Any) -> Any:
        frame = real_frame(*args, **kwargs)
        listed.append(len(frame))
        return frame

    monkeypatch.setattr(s3_partition, "listing_frame", spy)
    monkeypatch.setattr(s3_partition, "CHUNK_KEYS", 40)  # ranges of ~100 keys are compared 40 keys at a time
    ranges = s3_partition.whole_bucket(plan_partitions.fn(backend, cfg.source_region, source, 100))
    assert len(ranges) == 7
    parts = [s3_partition.validate_partition.fn(backend, cfg, source, target, r, "run1") for r in ranges]
    assert all("mismatches" not in p for p in parts)  # only counts come back
    row = s3_partition.add_counts(source, target, "full", parts)
    rows = s3_partition.collect_mismatches.fn(backend, cfg, target, "run1")

    assert max(listed) <= 40 and len(listed) > 2 * len(ranges)  # chunks of a range, never a range or the bucket
    for key in s3_partition.COUNTS:
        assert row[key] == whole[key], key
    # The 3 corrupted bulk objects and the 3 seeded differences; target-only objects without a manifest record.
    assert row["different"] == 3 + 3 and row["foreign"] == 2
    pd_rows = rows[["key", "kind", "detail"]].astype(str).values.tolist()
    assert pd_rows == whole_rows[["key", "kind", "detail"]].astype(str).values.tolist()
    # Read back once, then gone from the checkpoint table.
    assert s3_partition.collect_mismatches.fn(backend, cfg, target, "run1").empty
