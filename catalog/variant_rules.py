"""Input checks of variants, option groups and images: each cleans a value or records why it is
refused, under the field the caller sent (`variants[1].options`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from catalog.validation import check_price, check_stock, clean_sku
from servicekit.errors import Violations
from servicekit.text import clean_text

MAX_OPTION_GROUPS = 10
MAX_OPTION_VALUES = 100
MAX_OPTION_LENGTH = 50
MAX_VARIANTS = 100
MAX_VARIANT_NAME_LENGTH = 200
MAX_IMAGES = 20
MAX_IMAGE_URL_LENGTH = 2048
MAX_ALT_LENGTH = 500
DEFAULT_VARIANT_NAME = "Default"

# The JSON of a product's option groups: [{"name": "Size", "values": ["S", "M"]}].
OptionGroups = list[dict[str, Any]]


@dataclass(frozen=True)
class VariantInput:
    """A variant as a caller gives it; price None means the product's price."""

    sku: str
    name: str = ""
    options: Sequence[tuple[str, str]] = ()
    price_minor: int | None = None
    currency: str | None = None
    stock: int = 0
    low_stock_threshold: int | None = None


@dataclass(frozen=True)
class VariantDraft:
    """A variant as given, cleaned: what a new variant is made of."""

    sku: str
    name: str
    options: list[dict[str, str]]
    options_key: str
    price_minor: int | None
    stock: int
    low_stock_threshold: int | None


def clean_option_groups(raw: Sequence[tuple[str, Sequence[str]]], violations: Violations) -> OptionGroups:
    """Groups with names and values unique (case-insensitively) and of bounded size."""
    if len(raw) > MAX_OPTION_GROUPS:
        violations.add("option_groups", f"at most {MAX_OPTION_GROUPS} groups")
        return []
    groups: OptionGroups = []
    seen: set[str] = set()
    for i, (name, values) in enumerate(raw):
        field = f"option_groups[{i}]"
        name = clean_text(name, f"{field}.name", violations, max_length=MAX_OPTION_LENGTH, required=True)
        if name.casefold() in seen:
            violations.add(f"{field}.name", "names another group already given")
        seen.add(name.casefold())
        if not values:
            violations.add(f"{field}.values", "at least one value is required")
        elif len(values) > MAX_OPTION_VALUES:
            violations.add(f"{field}.values", f"at most {MAX_OPTION_VALUES} values")
            continue
        cleaned: list[str] = []
        for j, value in enumerate(values):
            value = clean_text(
                value, f"{field}.values[{j}]", violations, max_length=MAX_OPTION_LENGTH, required=True
            )
            if value.casefold() in {v.casefold() for v in cleaned}:
                violations.add(f"{field}.values[{j}]", "is given twice")
            cleaned.append(value)
        groups.append({"name": name, "values": cleaned})
    return groups


def clean_options(
    raw: Sequence[tuple[str, str]], groups: OptionGroups, field: str, violations: Violations
) -> tuple[list[dict[str, str]], str]:
    """The options in the order of the product's groups, spelled as the groups spell them, and
    their canonical key. Each names a group and a value of the product, each group at most once."""
    by_name = {g["name"].casefold(): g for g in groups}
    chosen: dict[str, str] = {}
    for group, value in raw:
        found = by_name.get(group.strip().casefold())
        if found is None:
            violations.add(field, f"the product has no option group {group.strip()[:MAX_OPTION_LENGTH]!r}")
            continue
        if found["name"] in chosen:
            violations.add(field, f"names the group {found['name']!r} twice")
            continue
        spelled = {v.casefold(): v for v in found["values"]}.get(value.strip().casefold())
        if spelled is None:
            violations.add(
                field, f"{value.strip()[:MAX_OPTION_LENGTH]!r} is not a value of {found['name']!r}"
            )
            continue
        chosen[found["name"]] = spelled
    options = [{"group": g["name"], "value": chosen[g["name"]]} for g in groups if g["name"] in chosen]
    key = "|".join(f"{o['group'].casefold()}={o['value'].casefold()}" for o in options)
    return options, key


def clean_variant(
    given: VariantInput, *, currency: str, groups: OptionGroups, field: str, violations: Violations
) -> VariantDraft:
    """One variant's input, cleaned; `field` is where it sits ("variant", "variants[2]") and
    `currency` the product's, which a variant's own price must be in."""
    scoped = Violations()
    sku = clean_sku(given.sku, scoped)
    name = clean_text(given.name, "name", scoped, max_length=MAX_VARIANT_NAME_LENGTH, required=False)
    chosen, key = clean_options(given.options, groups, "options", scoped)
    if given.price_minor is not None:
        if (given.currency or "").strip().upper() != currency:
            scoped.add("price.currency", f"must be the product's currency, {currency}")
        else:
            check_price(given.price_minor, currency, scoped)
    check_stock(given.stock, "stock", scoped)
    if given.low_stock_threshold is not None:
        check_stock(given.low_stock_threshold, "low_stock_threshold", scoped)
    for item in scoped.items:
        violations.add(f"{field}.{item.field}", item.description)
    return VariantDraft(
        sku=sku,
        name=name or variant_name(chosen),
        options=chosen,
        options_key=key,
        price_minor=given.price_minor,
        stock=given.stock,
        low_stock_threshold=given.low_stock_threshold,
    )


def clean_variants(
    given: Sequence[VariantInput], *, currency: str, groups: OptionGroups, violations: Violations
) -> list[VariantDraft]:
    """The variants of a new product: unique SKUs and option combinations among themselves."""
    if len(given) > MAX_VARIANTS:
        violations.add("variants", f"at most {MAX_VARIANTS} variants")
        return []
    drafts: list[VariantDraft] = []
    for i, variant in enumerate(given):
        draft = clean_variant(
            variant, currency=currency, groups=groups, field=f"variants[{i}]", violations=violations
        )
        if any(d.sku == draft.sku for d in drafts):
            violations.add(f"variants[{i}].sku", "is given to another variant too")
        if any(d.options_key == draft.options_key for d in drafts):
            violations.add(f"variants[{i}].options", "another variant has the same options")
        drafts.append(draft)
    return drafts


def variant_name(options: Sequence[dict[str, str]]) -> str:
    """ "Red / M" from the option values; "Default" without options."""
    return " / ".join(o["value"] for o in options) or DEFAULT_VARIANT_NAME


def search_terms(skus: Sequence[str], options: Sequence[Sequence[dict[str, str]]]) -> str:
    """What the search vector learns of a product's variants: SKUs and option values."""
    values = dict.fromkeys(o["value"] for variant in options for o in variant)
    return " ".join([*skus, *values])


def clean_images(raw: Sequence[tuple[str, str]], violations: Violations) -> list[tuple[str, str]]:
    """At most 20 images with http(s) URLs of at most 2,048 characters."""
    if len(raw) > MAX_IMAGES:
        violations.add("images", f"at most {MAX_IMAGES} images")
        return []
    images: list[tuple[str, str]] = []
    for i, (url, alt) in enumerate(raw):
        field = f"images[{i}]"
        url = clean_text(url, f"{field}.url", violations, max_length=MAX_IMAGE_URL_LENGTH, required=True)
        if url and len(url) <= MAX_IMAGE_URL_LENGTH and not _is_web_url(url):
            violations.add(f"{field}.url", "must be an http or https URL")
        alt = clean_text(alt, f"{field}.alt", violations, max_length=MAX_ALT_LENGTH, required=False)
        images.append((url, alt))
    return images


def _is_web_url(url: str) -> bool:
    if any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
