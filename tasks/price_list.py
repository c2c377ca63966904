"""Prices from the AWS Price List API for `--plan --aws`: the request prices of the source region replace the shipped
table's where the API answers; where it refuses (permissions, an endpoint without it) or has no product, the table's
price stays and the plan says so. A price the user's `--prices` file set is never replaced.

The Price List API is served from us-east-1 (and two other regions) whatever the region priced; its products are
matched on `regionCode`, `productFamily` and `group` (TERM_MATCH filters of GetProducts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from config.prices import PriceTable
from tasks.aws import Backend, error_code

PRICING_REGION = "us-east-1"
# key -> (ServiceCode, product attributes): only prices whose products are named this way in the Price List.
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "s3PutCopyList": ("AmazonS3", {"productFamily": "API Request", "group": "S3-API-Tier1"}),
    "s3GetHead": ("AmazonS3", {"productFamily": "API Request", "group": "S3-API-Tier2"}),
    "ddbOnDemandWrite": (
        "AmazonDynamoDB",
        {"productFamily": "Amazon DynamoDB PayPerRequest Throughput", "group": "DDB-WriteUnits"},
    ),
    "ddbOnDemandRead": (
        "AmazonDynamoDB",
        {"productFamily": "Amazon DynamoDB PayPerRequest Throughput", "group": "DDB-ReadUnits"},
    ),
}


def unit_price(price_list: Iterable[str]) -> float | None:
    """The highest non-zero on-demand USD price per unit among the products (a free tier is priced 0, and the
    highest tier is the one that never underestimates), or None when there is none."""
    found: list[float] = []
    for text in price_list:
        product: dict[str, Any] = json.loads(text)
        for term in (product.get("terms", {}).get("OnDemand") or {}).values():
            for dim in (term.get("priceDimensions") or {}).values():
                usd = float((dim.get("pricePerUnit") or {}).get("USD") or 0)
                if usd > 0:
                    found.append(usd)
    return max(found) if found else None


def from_price_list(backend: Backend, table: PriceTable, region: str) -> PriceTable:
    """`table` with the prices the Price List API gives for `region` (see the module docstring)."""
    client = backend.client("pricing", PRICING_REGION, max_attempts=2)
    today = datetime.now(UTC).date().isoformat()
    prices = dict(table.prices)
    notes: list[str] = []
    asked: list[str] = []
    for key, (service, attrs) in QUERIES.items():
        if key in table.overridden:
            continue
        filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in {"regionCode": region, **attrs}.items()]
        try:
            resp = client.get_products(ServiceCode=service, Filters=filters, FormatVersion="aws_v1", MaxResults=20)
        except (ClientError, BotoCoreError) as err:
            why = error_code(err) or type(err).__name__
            notes.append(f"the AWS Price List API refused ({why}): the table's prices are used")
            break
        usd = unit_price(resp.get("PriceList", []))
        if usd is None:
            notes.append(f"{key}: no {service} product in the Price List for {region}: the table's price")
            continue
        old = prices[key]
        prices[key] = old.model_copy(
            update={"usd": usd * old.per, "source": f"AWS Price List API ({service}, {region})", "date": today}
        )
        asked.append(key)
    origin = [*table.origin, *([f"AWS Price List API for {region}: {', '.join(asked)}"] if asked else []), *notes]
    return table.model_copy(update={"prices": prices, "origin": origin})
