"""Durable progress, kept in a DynamoDB table in the target region.

A kill, a crash or a run from another machine resumes from here: S3 backfill manifests, DynamoDB scan
segment positions and stream shard sequence numbers all live under (pk, sk). The table is part of the
migration (tagged, encrypted with the CMK) and is removed by teardown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tasks.aws import Backend, error_code, is_not_found, tag_list
from tasks.move.dynamodb_write import write_all
from tasks.move.keys import CUTOVER_PK
from tasks.steps import step

_SER = TypeSerializer()
_DES = TypeDeserializer()


@step("provision-checkpoints")
def ensure_checkpoint_table(
    backend: Backend, region: str, name: str, tags: dict[str, str], kms_key_arn: str | None
) -> dict[str, Any]:
    """Create the checkpoint table if missing (on-demand billing, CMK encryption); return its description."""
    ddb = backend.client("dynamodb", region)
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
    except Exception as err:
        if not is_not_found(err):
            raise
        sse: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if kms_key_arn:
            sse["KMSMasterKeyId"] = kms_key_arn
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification=sse,
            Tags=tag_list(tags),
        )
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        desc = ddb.describe_table(TableName=name)["Table"]
    return {
        "name": name,
        "arn": desc["TableArn"],
        "region": region,
        "billingMode": desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
        "sse": desc.get("SSEDescription", {}).get("SSEType"),
    }


class CheckpointStore:
    """Get/put/query small progress records by (pk, sk) in the checkpoint table."""

    def __init__(self, backend: Backend, region: str, table: str) -> None:
        self.backend = backend
        self.region = region
        self.table = table

    @property
    def _ddb(self) -> Any:
        return self.backend.client("dynamodb", self.region)

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One record's attributes (without pk/sk), read consistently, or None."""
        resp = self._ddb.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        item = resp.get("Item")
        return _strip(_decode(item)) if item else None

    def put(self, pk: str, sk: str, attrs: dict[str, Any]) -> None:
        """Write one record (replacing it); `updatedAt` is stamped so operators can see progress age."""
        item = {**attrs, "pk": pk, "sk": sk, "updatedAt": int(time.time())}
        self._ddb.put_item(TableName=self.table, Item=_encode(item))

    def put_many(self, pk: str, records: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Write many records under one pk in 25-item batches (dynamodb_write: unprocessed items re-sent with
        backoff); returns count."""
        now = int(time.time())
        requests = (
            {"PutRequest": {"Item": _encode({**attrs, "pk": pk, "sk": sk, "updatedAt": now})}} for sk, attrs in records
        )
        return write_all(self._ddb, self.table, requests).written

    def query(self, pk: str, sk_prefix: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """All (sk, attrs) under pk, optionally only sort keys starting with sk_prefix."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if sk_prefix:
            kwargs["KeyConditionExpression"] += " AND begins_with(sk, :p)"
            kwargs["ExpressionAttributeValues"][":p"] = {"S": sk_prefix}
        for page in self._ddb.get_paginator("query").paginate(**kwargs):
            for item in page.get("Items", []):
                rec = _decode(item)
                yield rec["sk"], _strip(rec)

    def query_range(
        self,
        pk: str,
        start_after: str | None,
        end: str | None,
        attributes: list[str] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(sk, attrs) under pk with start_after < sk <= end (None = unbounded), in sort-key order.

        One paged range read per S3 key partition instead of a get per object; DynamoDB orders string
        sort keys by UTF-8 bytes, the same order S3 lists keys in, so the ranges line up. `attributes`
        limits what is read back (less to transfer and decode on large ranges).
        """
        if start_after is not None and end is not None and start_after >= end:
            return
        cond = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if start_after is not None and end is not None:
            cond += " AND sk BETWEEN :a AND :b"  # inclusive: start_after itself is dropped below
            values[":a"] = {"S": start_after}
            values[":b"] = {"S": end}
        elif start_after is not None:
            cond += " AND sk > :a"
            values[":a"] = {"S": start_after}
        elif end is not None:
            cond += " AND sk <= :b"
            values[":b"] = {"S": end}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": cond,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        if attributes:
            names = {f"#a{i}": a for i, a in enumerate(["sk", *attributes])}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        for page in self._ddb.get_paginator("query").paginate(**kwargs):
            for item in page.get("Items", []):
                rec = _decode(item)
                if rec["sk"] != start_after:
                    yield rec["sk"], _strip(rec)

    def delete(self, pk: str, sk: str) -> None:
        """Remove one record (absent is fine)."""
        self._ddb.delete_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    def put_if_absent(self, pk: str, sk: str, attrs: dict[str, Any]) -> bool:
        """Write one record only if none exists (first writer wins); True when this call wrote it.

        Used for decisions a resumed or concurrent run must share, e.g. a table's scan segment count.
        """
        return self.put_where(pk, sk, attrs, "attribute_not_exists(pk)")

    def put_where(
        self, pk: str, sk: str, attrs: dict[str, Any], condition: str, values: dict[str, Any] | None = None
    ) -> bool:
        """Write one record only if `condition` holds on the stored one (`values`: plain Python, encoded here);
        True when this call wrote it, False when the condition failed."""
        item = {**attrs, "pk": pk, "sk": sk, "updatedAt": int(time.time())}
        return self._conditional(self._ddb.put_item, condition, values, Item=_encode(item))

    def delete_where(self, pk: str, sk: str, condition: str, values: dict[str, Any] | None = None) -> bool:
        """Remove one record only if `condition` holds on it; False when the condition failed."""
        return self._conditional(self._ddb.delete_item, condition, values, Key=_encode({"pk": pk, "sk": sk}))

    def _conditional(
        self, call: Callable[..., Any], condition: str, values: dict[str, Any] | None, **kwargs: Any
    ) -> bool:
        if values:
            kwargs["ExpressionAttributeValues"] = _encode(values)
        try:
            call(TableName=self.table, ConditionExpression=condition, **kwargs)
        except Exception as err:
            if error_code(err) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete_pk(self, pk: str) -> int:
        """Remove every record under pk; returns how many."""
        keys = [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for sk, _ in self.query(pk)]
        write_all(self._ddb, self.table, keys)
        return len(keys)


@step("record-cutover")
def record_cutover(backend: Backend, region: str, table: str, decided_at: str, decision: dict[str, Any]) -> None:
    """The GO/NO-GO and its moment, kept in the checkpoint table; a retry rewrites the same item (same keys)."""
    CheckpointStore(backend, region, table).put(
        CUTOVER_PK, decided_at, {"decision": decision["decision"], "reasons": decision["reasons"]}
    )


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DES.deserialize(v) for k, v in item.items()}


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("pk", "sk")}
