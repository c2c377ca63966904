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
