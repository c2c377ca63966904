"""`--plan --aws`: prices from the AWS Price List API where it answers (requests checked against the real service
model by botocore's Stubber), the shipped table where it refuses, the user's file always."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.stub import Stubber

from config.prices import load_prices
from tasks.aws import Backend
from tasks.price_list import PRICING_REGION, QUERIES, from_price_list, unit_price


def product(*usd: str) -> str:
    """One Price List product (aws_v1 format) with these on-demand price dimensions."""
    dims = {f"SKU.TERM.{i}": {"unit": "Requests", "pricePerUnit": {"USD": u}} for i, u in enumerate(usd)}
    return json.dumps({"product": {"sku": "SKU"}, "terms": {"OnDemand": {"SKU.TERM": {"priceDimensions": dims}}}})


def expected(key: str, region: str) -> dict[str, Any]:
    service, attrs = QUERIES[key]
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in {"regionCode": region, **attrs}.items()]
    return {"ServiceCode": service, "Filters": filters, "FormatVersion": "aws_v1", "MaxResults": 20}


def test_price_list_prices_replace_the_table_and_cite_the_api(backend: Backend) -> None:
    table = load_prices()
    client = backend.client("pricing", PRICING_REGION, max_attempts=2)
    answers = {
        "s3PutCopyList": [product("0.0000055")],
        "s3GetHead": [product("0.00000044")],
        "ddbOnDemandWrite": [product("0.0000000000", "0.00000075")],  # a free tier priced 0, then the paid one
        "ddbOnDemandRead": [],  # no product: the table's price stays
    }
    with Stubber(client) as stub:
        for key, found in answers.items():
            stub.add_response(
                "get_products", {"PriceList": found, "FormatVersion": "aws_v1"}, expected(key, "eu-west-2")
            )
        priced = from_price_list(backend, table, "eu-west-2")
        stub.assert_no_pending_responses()
    assert priced["s3PutCopyList"].usd == 0.0055  # per 1,000 requests, as the table states it
    assert priced["s3PutCopyList"].source == "AWS Price List API (AmazonS3, eu-west-2)"
    assert round(priced["s3GetHead"].usd, 8) == 0.00044
    assert round(priced["ddbOnDemandWrite"].usd, 6) == 0.75  # per million
    assert priced["ddbOnDemandRead"] == table["ddbOnDemandRead"]
    assert "AWS Price List API for eu-west-2: s3PutCopyList, s3GetHead, ddbOnDemandWrite" in priced.origin
    assert "ddbOnDemandRead: no AmazonDynamoDB product in the Price List for eu-west-2: the table's price" in (
        priced.origin
    )


def test_a_refused_price_list_keeps_the_table_and_says_so(backend: Backend) -> None:
    table = load_prices()
    client = backend.client("pricing", PRICING_REGION, max_attempts=2)
    with Stubber(client) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not authorized: pricing:GetProducts")
        priced = from_price_list(backend, table, "us-east-1")
    assert priced.prices == table.prices
    assert priced.origin[-1] == "the AWS Price List API refused (AccessDeniedException): the table's prices are used"


def test_the_users_file_wins_over_the_price_list(backend: Backend, tmp_path: Path) -> None:
    mine = tmp_path / "prices.json"
    mine.write_text(json.dumps({"prices": {"s3PutCopyList": {"usd": 0.004}, "s3GetHead": {"usd": 0.0003}}}))
    table = load_prices(mine)
    client = backend.client("pricing", PRICING_REGION, max_attempts=2)
    with Stubber(client) as stub:  # only the two DynamoDB prices are asked
        for key in ("ddbOnDemandWrite", "ddbOnDemandRead"):
            stub.add_response("get_products", {"PriceList": [product("0.000001")]}, expected(key, "us-east-1"))
        priced = from_price_list(backend, table, "us-east-1")
        stub.assert_no_pending_responses()
    assert priced["s3PutCopyList"].usd == 0.004 and priced["s3GetHead"].usd == 0.0003
    assert round(priced["ddbOnDemandRead"].usd, 6) == 1.0


def test_unit_price_takes_the_highest_paid_dimension() -> None:
    assert unit_price([product("0", "0.023", "0.022")]) == 0.023
    assert unit_price([product("0")]) is None and unit_price([]) is None
