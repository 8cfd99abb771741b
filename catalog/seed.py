"""The demo catalog `ecommerce seed` loads (and `ecommerce dev` on first start): realistic products
in a handful of categories, priced in the catalog's currency. Loading is idempotent by slug and SKU.

The data is `demo_catalog.json`, next to this module: one category or product a line, products
grouped by category."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

_DATA: dict[str, Any] = json.loads(
    resources.files("catalog").joinpath("demo_catalog.json").read_text(encoding="utf-8")
)

CATEGORIES: list[dict[str, str]] = _DATA["categories"]
PRODUCTS: list[dict[str, object]] = _DATA["products"]
