"""A product as one of its variants sells it: the variant a cart or order line names (or the
product's only one), priced, named and SKU'd by that variant."""

from __future__ import annotations

import uuid
from dataclasses import replace

from order.peers import ProductInfo


class NoSuchVariant(ValueError):
    """A line names no variant of its product that is sold, or names none of a product with several."""


NOT_A_VARIANT = "is not a variant of this product that is sold"
CHOOSE_A_VARIANT = "the product has several variants; choose one"


def variant_of(product: ProductInfo, variant_id: uuid.UUID | None) -> tuple[uuid.UUID | None, ProductInfo]:
    """The variant a line orders (the product's only one when it names none) and the product as
    that variant prices it (its SKU, name and price); NoSuchVariant when there is no such variant.
    A catalog that lists no variants (one older than variants) sells the product itself."""
    if not product.variants:
        if variant_id is not None:
            raise NoSuchVariant(NOT_A_VARIANT)
        return None, product
    if variant_id is None:
        if len(product.variants) != 1:
            raise NoSuchVariant(CHOOSE_A_VARIANT)
        [variant] = product.variants.values()
    else:
        found = product.variants.get(str(variant_id))
        if found is None:
            raise NoSuchVariant(NOT_A_VARIANT)
        variant = found
    name = product.name if len(product.variants) == 1 else f"{product.name} ({variant.name})"
    return uuid.UUID(variant.id), replace(
        product, sku=variant.sku, name=name, price_minor=variant.price_minor
    )
