"""S3's stored checksums as content proof: which pairs prove or disprove equal content by themselves, which
need one side streamed (and hashed here with the other side's algorithm), and which need both.

Pure (no AWS calls), so the copy (tasks/move/s3_object.py) and the validation share one rule. The local
hashers are botocore's own (tasks/validate/s3.py streams the bytes into them): CRC32, SHA-1 and SHA-256 always;
CRC32C and CRC64NVME only where botocore has the AWS CRT (`pip install boto3[crt]`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore import httpchecksum

# The order checksum_verdict tries common algorithms in.
CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
# Size of each algorithm's value (S3 API reference: "The Base64 encoded, 64-bit CRC64NVME checksum" etc.).
DIGEST_BYTES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
# Which stored checksum to check against when only one side has it: the strongest first.
STRENGTH = ("SHA256", "SHA1", "CRC64NVME", "CRC32C", "CRC32")
# What the copy asks S3 to compute when the source has no full-object checksum of its own. A single
# CopyObject gets SHA-256: full-object, and verifiable with the standard library on every client. A multipart
# copy gets CRC64NVME: the only algorithm whose multipart checksum is always FULL_OBJECT (S3 user guide,
# "Checking object integrity": SHA-1/SHA-256 of a multipart upload are COMPOSITE, a checksum of part checksums
# that depends on the part layout, so no other object's checksum could ever match it).
# botocore refuses to send CRC64NVME without the AWS CRT ("Missing Dependency ... botocore[crt]"); then the
# multipart copy names none, and S3 adds its default, CRC64NVME, to an upload made without one (API
# reference, ObjectPart / CopyObjectResult ChecksumCRC64NVME): the same checksum, and the read-back shows it.
COPY_CHECKSUM = "SHA256"
MULTIPART_COPY_CHECKSUM: str | None = "CRC64NVME" if httpchecksum.HAS_CRT else None
_COMPOSITE = re.compile(r"-\d+$")
_HASHERS: dict[str, Any] = {
    "CRC32": httpchecksum.Crc32Checksum,
    "SHA1": httpchecksum.Sha1Checksum,
    "SHA256": httpchecksum.Sha256Checksum,
}
if httpchecksum.HAS_CRT:  # pragma: no cover - the CRT is not installed on the test machine
    _HASHERS.update(CRC32C=httpchecksum.CrtCrc32cChecksum, CRC64NVME=httpchecksum.CrtCrc64NvmeChecksum)


@dataclass(frozen=True)
class Checksum:
    """One S3-stored checksum of an object."""

    algorithm: str
    value: str
    type: str  # FULL_OBJECT or COMPOSITE


def object_checksums(head: Mapping[str, Any]) -> dict[str, Checksum]:
    """The checksums a head_object (ChecksumMode=ENABLED) response carries, by algorithm.

    ChecksumType is not always returned (older objects, emulators): a value ending in "-<parts>" is a
    checksum of part checksums (COMPOSITE), anything else covers the whole object.
    """
    out: dict[str, Checksum] = {}
    for algo in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algo}")
        if value:
            kind = head.get("ChecksumType") or ("COMPOSITE" if _COMPOSITE.search(value) else "FULL_OBJECT")
            out[algo] = Checksum(algo, value, kind)
    return out


def malformed(checksum: Checksum) -> str:
    """Why a stored value cannot be this algorithm's checksum ('' = it can): moto 5.2.5 without the AWS CRT
    stores a 4-byte CRC-32 under the CRC64NVME name, which no real CRC-64 could ever equal."""
    try:
        raw = base64.b64decode(_COMPOSITE.sub("", checksum.value), validate=True)
    except (binascii.Error, ValueError):
        return f"{checksum.algorithm} value {checksum.value!r} is not base64"
    want = DIGEST_BYTES[checksum.algorithm]
    if len(raw) != want:
        return f"{checksum.algorithm} values are {len(raw)} bytes, not the {want} of that algorithm"
    return ""


def usable_checksums(head: Mapping[str, Any]) -> tuple[dict[str, Checksum], dict[str, str]]:
    """(checksums that can prove content, {algorithm: why not} for the stored ones that cannot)."""
    good: dict[str, Checksum] = {}
    bad: dict[str, str] = {}
    for algo, checksum in object_checksums(head).items():
        why = malformed(checksum)
        if why:
            bad[algo] = why
        else:
            good[algo] = checksum
    return good, bad


def checksum_verdict(src: dict[str, Checksum], dst: dict[str, Checksum]) -> tuple[bool | None, str]:
    """(same?, how) from stored checksums alone; same is None when they cannot decide (then stream).

    Equal full-object checksums of one algorithm prove equal content and unequal ones prove a difference.
    Composite checksums depend on the part layout, so only their equality is conclusive.
    """
    for algo in CHECKSUM_ALGORITHMS:
        a, b = src.get(algo), dst.get(algo)
        if a is None or b is None or a.type != b.type:
            continue
        if a.type == "FULL_OBJECT":
            return a.value == b.value, f"checksum {algo}"
        if a.value == b.value:
            return True, f"checksum {algo} (composite)"
    return None, ""


def one_side_plan(src: dict[str, Checksum], dst: dict[str, Checksum]) -> tuple[str, Checksum] | None:
    """('source' or 'target': the side to stream, the other side's stored checksum to compare it with), or
    None when neither side has a full-object checksum this client can compute (then both are streamed).
    The strongest algorithm wins; the target's checksum first (it is the one our copy asked S3 for)."""
    for algo in STRENGTH:
        if algo not in _HASHERS:
            continue
        for side, stored in (("source", dst.get(algo)), ("target", src.get(algo))):
            if stored is not None and stored.type == "FULL_OBJECT":
                return side, stored
    return None


def hasher(algorithm: str) -> Any:
    """A fresh botocore checksum object for `algorithm` (update(bytes), b64digest() as S3 stores it)."""
    return _HASHERS[algorithm]()


def copy_algorithm(listed: Mapping[str, Any], multipart: bool) -> str | None:
    """The ChecksumAlgorithm a copy asks for, or None to keep the source's own.

    CopyObject copies the source's algorithm and value when the request names none (S3 API reference,
    CopyObject x-amz-checksum-algorithm), so a source with a full-object checksum keeps it and both sides
    compare directly. `listed` is the source's ListObjectsV2 entry (ChecksumAlgorithm, ChecksumType) or HEAD.
    """
    if multipart:
        return MULTIPART_COPY_CHECKSUM  # (None without the CRT: S3's own default is the same)
    algos = listed.get("checksumAlgorithm")
    kind = listed.get("checksumType")
    if algos and kind != "COMPOSITE":
        return None
    return COPY_CHECKSUM


def checksum_gap(read_back: Mapping[str, Any], algorithm: str | None) -> str:
    """Why a copy's read-back (CopyObjectResult, or HEAD with ChecksumMode) does not carry a checksum S3
    computed ('' = it does): the backend stored none, or a value that cannot be of that algorithm."""
    found = object_checksums(read_back)
    if algorithm is not None and algorithm not in found:
        return f"a copy asked for {algorithm} came back without a {algorithm} checksum"
    if not found:
        return "a copy came back without any checksum"
    whys = [malformed(c) for c in found.values()]
    return next((w for w in whys if w), "")


def needs_streaming(listed: Mapping[str, Any]) -> bool:
    """Whether full validation will read this source object (a ListObjectsV2 entry): it has no full-object
    checksum the copy keeps, so its content is proven by streaming it against the target's stored one."""
    return not listed.get("ChecksumAlgorithm") or listed.get("ChecksumType") == "COMPOSITE"
