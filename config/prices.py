"""The prices the plan's estimate uses: a dated, cited table of us-east-1 list prices shipped with the project
(config/prices-us-east-1.json), which a user's JSON file overrides entry by entry (`--prices FILE`).

A price is `usd` per `per` units (e.g. $0.005 per 1,000 requests), so each entry reads as the pricing page states
it and the estimate never converts units by hand. Every shipped entry names its pricing page and the date it was
read: list prices change, and an estimate is only as good as the date of its prices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.errors import UserError

TABLE = Path(__file__).with_name("prices-us-east-1.json")

# The keys the estimator prices (tasks/estimate.py): a table without one of them cannot price a path.
KEYS = (
    "s3PutCopyList",
    "s3GetHead",
    "transferInterRegion",
    "s3BatchJob",
    "s3BatchObjects",
    "kmsRequests",
    "ddbOnDemandWrite",
    "ddbOnDemandRead",
    "ddbProvisionedWcuHour",
    "ddbProvisionedRcuHour",
    "ddbExport",
    "ddbImport",
    "ddbPitr",
    "ddbStreamsRead",
)


class Price(BaseModel):
    """One list price: `usd` for every `per` units of `unit`, from `source` as read on `date`."""

    model_config = ConfigDict(extra="forbid")

    usd: float = Field(ge=0)
    per: float = Field(1, gt=0)
    unit: str = ""
    source: str = Field(min_length=1)
    date: str = Field(min_length=1)
    checked: str = ""

    def cost(self, quantity: float) -> float:
        """What `quantity` units cost at this price."""
        return self.usd * quantity / self.per


class PriceTable(BaseModel):
    """Every price the estimate needs, with where the table came from (shipped, a user file, the Price List API)."""

    model_config = ConfigDict(extra="forbid")

    region: str
    currency: str = "USD"
    date: str
    note: str = ""
    prices: dict[str, Price]
    origin: list[str] = []
    overridden: list[str] = []  # keys the user's file set (the Price List API never replaces them)

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]

    def cost(self, key: str, quantity: float) -> float:
        return self.prices[key].cost(quantity)


def _missing(table: PriceTable) -> list[str]:
    return [k for k in KEYS if k not in table.prices]


def load_prices(user_file: str | Path | None = None) -> PriceTable:
    """The shipped table, with a user's file (if any) replacing the fields it gives, entry by entry.

    The user's file is `{"date": "...", "prices": {"s3PutCopyList": {"usd": 0.0055}, ...}}`; an entry without a
    `source` is cited as the file itself. A bad file is one UserError line naming the field and the fix.
    """
    raw = json.loads(TABLE.read_text(encoding="utf-8"))
    table = PriceTable.model_validate(raw)
    table.origin = [f"config/{TABLE.name}"]
    if user_file is None:
        return table
    where = f"--prices {user_file}"
    try:
        given = json.loads(Path(user_file).read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"{where}: cannot read the file ({err.strerror or err}); check the path") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: not JSON (line {err.lineno}: {err.msg}); fix the file") from None
    if not isinstance(given, dict) or not isinstance(given.get("prices"), dict):
        raise UserError(f'{where}: expected {{"prices": {{"<key>": {{"usd": <number>}}}}}}; fix the file')
    merged = dict(raw["prices"])
    for key, entry in given["prices"].items():
        if key not in merged:
            raise UserError(f"{where}: prices.{key} is not a price of the table; use one of {', '.join(KEYS)}")
        fields = entry if isinstance(entry, dict) else {"usd": entry}
        cite = {"source": f"user file {user_file}", "date": str(given.get("date") or "as given"), "checked": ""}
        merged[key] = {**merged[key], **cite, **fields}
    try:
        user = PriceTable.model_validate({**raw, "prices": merged})
    except ValidationError as err:
        first = err.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{where}: {path}: {first['msg']}; fix the file") from None
    user.origin = [*table.origin, f"overridden by {user_file} ({', '.join(sorted(given['prices']))})"]
    user.overridden = sorted(given["prices"])
    return user


def check_table(table: PriceTable) -> list[str]:
    """Problems that make a table unfit to price a plan (a missing key, an entry without a source or date)."""
    problems = [f"prices.{k}: missing" for k in _missing(table)]
    problems += [f"prices.{k}: no source URL" for k, p in table.prices.items() if not p.source.startswith("http")]
    return problems


def as_json(table: PriceTable) -> dict[str, Any]:
    """What the plan JSON carries of the prices: where they come from and each price used."""
    return {
        "region": table.region,
        "date": table.date,
        "origin": table.origin,
        "prices": {
            k: {"usd": p.usd, "per": p.per, "unit": p.unit, "source": p.source, "date": p.date}
            for k, p in table.prices.items()
        },
    }
