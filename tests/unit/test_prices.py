"""The price table: shipped, dated and cited; a user's file overrides it entry by entry; a bad file is one line
and exit 2 before anything starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config.prices import KEYS, TABLE, check_table, load_prices
from flows import migrate
from tasks import estimate as est
from tasks.errors import UserError

PRICING_PAGES = ("https://aws.amazon.com/s3/pricing/", "https://aws.amazon.com/kms/pricing/")


def test_shipped_table_has_every_price_with_its_page_and_date() -> None:
    table = load_prices()
    assert table.region == "us-east-1" and table.currency == "USD"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.date)
    assert set(KEYS) <= set(table.prices)
    assert check_table(table) == []
    for key, price in table.prices.items():
        assert price.source.startswith(PRICING_PAGES) or price.source.startswith(
            "https://aws.amazon.com/dynamodb/pricing/"
        ), key
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.date), key
        assert price.checked, f"{key}: say what was checked"
    raw = json.loads(TABLE.read_text(encoding="utf-8"))
    assert raw["date"] == table.date


def test_a_user_file_wins_entry_by_entry(tmp_path: Path) -> None:
    mine = tmp_path / "prices.json"
    mine.write_text(json.dumps({"date": "2027-01-15", "prices": {"s3PutCopyList": {"usd": 0.01}, "s3GetHead": 0.001}}))
    shipped, table = load_prices(), load_prices(mine)
    assert table["s3PutCopyList"].usd == 0.01 and table["s3PutCopyList"].per == 1000
    assert table["s3PutCopyList"].source == f"user file {mine}" and table["s3PutCopyList"].date == "2027-01-15"
    assert table["s3GetHead"].usd == 0.001
    assert table["kmsRequests"] == shipped["kmsRequests"]
    assert "overridden by" in table.origin[-1]
    workers = est.CopyWorkers(1, 1)
    # 1,000 COPY at $0.01 per 1,000 instead of $0.005
    assert est.s3_client_copy(table, 1000, 0, workers)["lines"][0]["usd"] == pytest.approx(0.01)
    assert est.s3_client_copy(shipped, 1000, 0, workers)["lines"][0]["usd"] == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not JSON (line 1"),
        ('{"s3PutCopyList": 1}', 'expected {"prices"'),
        ('{"prices": {"s3Puts": {"usd": 1}}}', "prices.s3Puts is not a price of the table; use one of s3PutCopyList"),
        ('{"prices": {"s3GetHead": {"usd": -1}}}', "prices.s3GetHead.usd: Input should be greater than or equal to 0"),
        ('{"prices": {"s3GetHead": {"usd": 1, "cents": 2}}}', "prices.s3GetHead.cents: Extra inputs"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_field(tmp_path: Path, content: str, says: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(UserError) as err:
        load_prices(bad)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"--prices {bad}: ")


def test_migrate_cli_refuses_a_bad_prices_file_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"prices": {"ddbImport": {"usd": "cheap"}}}')
    # No backend flag: the embedded emulator would start (and print "backend: ...") if the file were not refused first.
    assert migrate.main(["--plan", "--prices", str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip().splitlines() == [
        f"error: --prices {bad}: prices.ddbImport.usd: Input should be a valid number, "
        "unable to parse string as a number; fix the file"
    ]
    assert migrate.main(["--plan", "--prices", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
