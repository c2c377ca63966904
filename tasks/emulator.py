"""The embedded default backend: a moto server on 127.0.0.1, seeded with demo source data.

The server runs as a small background process whose address is kept in `.state/emulator.json`, so its
state outlives one run, as AWS's does: a second `make demo` finds what the first created (and proves it
creates nothing new), and a killed run can be resumed. `python -m tasks.emulator stop` ends it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, is_not_found
from tasks.move.dynamodb_write import write_batch

log = logging.getLogger(__name__)

STATE_DIR = Path(os.environ.get("REGION_MIGRATION_STATE_DIR", ".state"))
LARGE_OBJECT_BYTES = 20 * 1024 * 1024  # above the 8 MiB multipart threshold, so the demo exercises it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    """A cheap liveness probe (moto's dashboard page is static; data.json would dump all state)."""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=10) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def ensure_emulator(state_dir: Path = STATE_DIR) -> str:
    """Endpoint of the running embedded emulator, starting one (detached, loopback only) if none answers."""
    state_file = state_dir / "emulator.json"
    if state_file.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            url = str(json.loads(state_file.read_text())["url"])
            if _answers(url):
                return url
    state_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(state_dir / "emulator.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tasks.emulator", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    deadline = time.monotonic() + 60
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the embedded emulator did not start; see {state_dir / 'emulator.log'}")
        time.sleep(0.2)
    state_file.write_text(json.dumps({"url": url, "pid": proc.pid}))
    return url


def stop_emulator(state_dir: Path = STATE_DIR) -> bool:
    """Stop the embedded emulator if one is recorded; its state is gone afterwards."""
    state_file = state_dir / "emulator.json"
    if not state_file.exists():
        return False
    try:
        pid = int(json.loads(state_file.read_text())["pid"])
        os.kill(pid, signal.SIGTERM)
    except (ValueError, KeyError, OSError):
        pass
    state_file.unlink(missing_ok=True)
    return True


def serve(port: int) -> None:
    """Run a moto server on 127.0.0.1:port until terminated (werkzeug's per-request log silenced)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()

    def _stop(*_: Any) -> None:
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------- demo data

_TRICKY_KEYS = [
    "reports/2026/q1 summary.csv",
    "reports/2026/ünïcödé-日本語.txt",
    "reports/plus+sign.txt",
    "reports/percent%20literal.txt",
    "empty/zero-byte.bin",
    "deep/" + "/".join(f"level{i}" for i in range(40)) + "/long-key.txt",
]


def _demo_objects(bucket_index: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(bucket_index)
    objs: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        key = f"events/dt=2026-11-{1 + i % 28:02d}/part-{i:05d}." + ("json", "csv", "parquet", "log")[kind]
        body = (f"{key}\n" * (1 + rng.randint(0, 60))).encode()
        objs.append(
            {
                "Key": key,
                "Body": body,
                "ContentType": ("application/json", "text/csv", "application/octet-stream", "text/plain")[kind],
                "Metadata": {"source-system": "demo", "row": str(i)},
                **({"Tagging": f"team=analytics&seq={i}"} if i % 3 == 0 else {}),
                **({"CacheControl": "max-age=3600", "ContentEncoding": "identity"} if i % 5 == 0 else {}),
            }
        )
    for key in _TRICKY_KEYS:
        objs.append({"Key": key, "Body": b"" if "zero-byte" in key else key.encode(), "Metadata": {"tricky": "yes"}})
    return objs


def _put(s3: Any, bucket: str, obj: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, **obj)


def _key_value(kind: str, i: int) -> dict[str, Any]:
    values: dict[str, Any] = {"S": f"id-{i:06d}", "N": str(1_700_000_000 + i), "B": i.to_bytes(4, "big")}
    return {kind: values[kind]}


def _demo_item(i: int, hash_key: str, hash_type: str, range_key: str | None, range_type: str) -> dict[str, Any]:
    """An item using every DynamoDB type, built in the low-level format so nothing is lost in translation."""
    item: dict[str, Any] = {
        "count": {"N": str(i)},
        "precise": {"N": "1234567890123456789012345678901234567" if i % 7 == 0 else f"{i}.{i % 97:02d}"},
        "payload": {"B": base64.b64decode(base64.b64encode(i.to_bytes(4, "big") * 4))},
        "labels": {"SS": [f"l{i % 3}", f"l{i % 5 + 3}"]},
        "scores": {"NS": [str(i % 11), str(i % 13 + 20)]},
        "blobs": {"BS": [b"\x00\x01", bytes([i % 256, 7])]},
        "active": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "note": {"S": "" if i % 10 == 0 else f"note {i}"},
        "profile": {
            "M": {"city": {"S": ("Dublin", "Paris", "Berlin")[i % 3]}, "tags": {"L": [{"N": "1"}, {"S": "x"}]}}
        },
    }
    if range_key:
        item["userId"] = {"S": f"user-{i % 97:03d}"}
        item[range_key] = _key_value(range_type, i)
    item[hash_key] = _key_value(hash_type, i)
    if i % 50 == 0:
        item["ttl"] = {"N": str(int(time.time()) + 30 * 86400)}
    return item


def seed_demo(
    backend: Backend, cfg: MigrationConfig, objects_per_bucket: int = 300, items_per_table: int = 2500
) -> dict[str, Any]:
    """Create the example config's source buckets and tables with demo data, unless they already exist."""
    region = cfg.source_region
    s3 = backend.client("s3", region)
    ddb = backend.client("dynamodb", region)
    seeded: dict[str, Any] = {"buckets": [], "tables": []}
    for index, spec in enumerate(cfg.s3_buckets):
        try:
            s3.head_bucket(Bucket=spec.name)
            continue
        except Exception as err:
            if not is_not_found(err):
                raise
        kwargs: dict[str, Any] = {"Bucket": spec.name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        objs = _demo_objects(index, objects_per_bucket)
        if index == 0:
            objs.append(
                {
                    "Key": "exports/large-export.bin",
                    "Body": os.urandom(LARGE_OBJECT_BYTES),
                    "ContentType": "application/octet-stream",
                    "Metadata": {"size-class": "large"},
                    "Tagging": "class=large",
                }
            )
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(functools.partial(_put, s3, spec.name), objs))
        seeded["buckets"].append({"name": spec.name, "objects": len(objs)})
    for index, tspec in enumerate(cfg.dynamodb_tables):
        try:
            ddb.describe_table(TableName=tspec.name)
            continue
        except Exception as err:
            if not is_not_found(err):
                raise
        with_range = index == 0
        hash_key = tspec.hash_key or ("eventId" if with_range else "userId")
        attrs = [{"AttributeName": hash_key, "AttributeType": tspec.hash_key_type or "S"}]
        keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        extra: dict[str, Any] = {}
        if with_range:
            range_key = tspec.range_key or "timestamp"
            attrs += [
                {"AttributeName": range_key, "AttributeType": tspec.range_key_type or "N"},
                {"AttributeName": "userId", "AttributeType": "S"},
            ]
            keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
            extra["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": "by-user",
                    "KeySchema": [
                        {"AttributeName": "userId", "KeyType": "HASH"},
                        {"AttributeName": range_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                    "ProvisionedThroughput": {
                        "ReadCapacityUnits": tspec.read_capacity or 5,
                        "WriteCapacityUnits": tspec.write_capacity or 5,
                    },
                }
            ]
        ddb.create_table(
            TableName=tspec.name,
            AttributeDefinitions=attrs,
            KeySchema=keys,
            ProvisionedThroughput={
                "ReadCapacityUnits": tspec.read_capacity or 5,
                "WriteCapacityUnits": tspec.write_capacity or 5,
            },
            **extra,
        )
        ddb.get_waiter("table_exists").wait(TableName=tspec.name, WaiterConfig={"Delay": 1})
        ddb.update_time_to_live(TableName=tspec.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
        range_name = (tspec.range_key or "timestamp") if with_range else None
        items = [
            _demo_item(i, hash_key, tspec.hash_key_type or "S", range_name, tspec.range_key_type or "N")
            for i in range(items_per_table)
        ]
        if with_range:
            # One item close to DynamoDB's 400 KB limit.
            items[1]["blob"] = {"B": os.urandom(380 * 1024)}

        def write(chunk: list[dict[str, Any]], table: str = tspec.name) -> None:
            write_batch(ddb, table, [{"PutRequest": {"Item": it}} for it in chunk])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))
        seeded["tables"].append({"name": tspec.name, "items": len(items)})
    return seeded


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.emulator", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="run a moto server in the foreground")
    p_serve.add_argument("--port", type=int, required=True)
    sub.add_parser("start", help="start (or find) the embedded emulator and print its URL")
    sub.add_parser("stop", help="stop the embedded emulator (its state is lost)")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.port)
    elif args.cmd == "start":
        print(ensure_emulator())
    else:
        print("stopped" if stop_emulator() else "no embedded emulator was running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
