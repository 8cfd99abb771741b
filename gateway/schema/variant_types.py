"""What a product is made of beyond itself: its variants (what is bought), their options, the
option groups they choose from, its images and the range of its prices."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2
from gateway.errors import bad_input
from gateway.read_models import Money
from servicekit.money import to_minor

# Beyond int64 the request could not even be encoded; anything this large is refused by the catalog.
MAX_MINOR = 2**63 - 1


def money(price: Decimal, currency: str, field: str = "price") -> money_pb2.Money:
    """A decimal price as minor units of its currency; the catalog judges the range and the code."""
    code = currency.strip().upper()
    try:
        amount = to_minor(price, code)
    except ValueError as exc:
        raise bad_input(field, str(exc)) from None
    if abs(amount) > MAX_MINOR:
        raise bad_input(field, "must be at most 1,000,000")
    return money_pb2.Money(amount_minor=amount, currency=code)


@strawberry.type(description='One option of a variant, e.g. {group: "Size", value: "M"}.')
class VariantOption:
    group: str = strawberry.field(description="The option group, one of the product's `optionGroups`.")
    value: str = strawberry.field(description="The chosen value, one of that group's values.")


@strawberry.type(description="A choice a product offers, e.g. Size with the values S, M and L.")
class OptionGroup:
    name: str = strawberry.field(description='The group, e.g. "Size".')
    values: list[str] = strawberry.field(description="The values its variants choose from.")


@strawberry.type(description="A picture of a product.")
class ProductImage:
    url: str = strawberry.field(description="http(s) address of the image.")
    alt: str = strawberry.field(description="Text that describes the image, for those who cannot see it.")
    position: int = strawberry.field(description="0-based display order; the first is featured.")


@strawberry.type(description="The lowest and highest price of a product's variants.")
class PriceRange:
    min: Money = strawberry.field(description="The cheapest variant's price.")
    max: Money = strawberry.field(description="The dearest variant's price.")


@strawberry.type(description="What is actually bought: a product in one combination of options.")
class ProductVariant:
    id: strawberry.ID = strawberry.field(description="Variant id (UUID); orders name it as `variantId`.")
    sku: str = strawberry.field(description="Stock-keeping unit, unique across the catalog.")
    name: str = strawberry.field(
        description='Display name, e.g. "Red / M"; "Default" for a product\'s only one.'
    )
    options: list[VariantOption] = strawberry.field(description="Its options, in the order of the groups.")
    price: Money = strawberry.field(description="Price of one unit: its own, or the product's.")
    stock: int = strawberry.field(description="Units that can still be bought right now.")
    in_stock: bool = strawberry.field(description="Whether at least one unit can be bought.")
    product_id: strawberry.ID = strawberry.field(description="The product it is a variant of.")
    threshold: strawberry.Private[int]

    @classmethod
    def from_proto(cls, message: catalog_pb2.ProductVariant) -> ProductVariant:
        return cls(
            id=strawberry.ID(message.id),
            sku=message.sku,
            name=message.name,
            options=[VariantOption(group=o.group, value=o.value) for o in message.options],
            price=Money.from_proto(message.price),
            stock=message.stock,
            in_stock=message.stock > 0,
            threshold=message.low_stock_threshold,
            product_id=strawberry.ID(message.product_id),
        )


def images_from_proto(message: catalog_pb2.Product) -> list[ProductImage]:
    return [ProductImage(url=i.url, alt=i.alt, position=i.position) for i in message.images]


def option_groups_from_proto(message: catalog_pb2.Product) -> list[OptionGroup]:
    return [OptionGroup(name=g.name, values=list(g.values)) for g in message.option_groups]


@strawberry.input(description='One option of a variant, e.g. {group: "Size", value: "M"}.')
class VariantOptionInput:
    group: str = strawberry.field(description="One of the product's option groups.")
    value: str = strawberry.field(description="One of that group's values.")


@strawberry.input(description="An option group of a new product.")
class OptionGroupInput:
    name: str = strawberry.field(description='1 to 50 characters, e.g. "Size"; unique in the product.')
    values: list[str] = strawberry.field(description="1 to 100 values of 1 to 50 characters, each once.")


@strawberry.input(description="A picture to show.")
class ProductImageInput:
    url: str = strawberry.field(description="http(s) address, at most 2,048 characters.")
    alt: str = strawberry.field(default="", description="What the image shows, at most 500 characters.")


@strawberry.input(description="A variant to add.")
class ProductVariantInput:
    sku: str = strawberry.field(description="Stock-keeping unit, unique across the catalog.")
    options: list[VariantOptionInput] = strawberry.field(
        default_factory=list, description="One value of each group it differs by; each group at most once."
    )
    price: Decimal | None = strawberry.field(
        default=None, description="Its own unit price in the product's currency; the product's when left out."
    )
    stock: int = strawberry.field(default=0, description="Units on hand, 0 or more.")
    name: str | None = strawberry.field(
        default=None, description='Display name; "Red / M" from its options when left out.'
    )
    low_stock_threshold: int | None = strawberry.field(
        default=None, description="Its own low-stock threshold; the product's when left out."
    )

    def to_proto(self, currency: str, field: str) -> catalog_pb2.VariantInput:
        message = catalog_pb2.VariantInput(
            sku=self.sku,
            name=self.name or "",
            options=[catalog_pb2.VariantOption(group=o.group, value=o.value) for o in self.options],
            stock=self.stock,
        )
        if self.price is not None:
            message.price.CopyFrom(money(self.price, currency, f"{field}.price"))
        if self.low_stock_threshold is not None:
            message.low_stock_threshold = self.low_stock_threshold
        return message


def images_to_proto(images: list[ProductImageInput]) -> list[catalog_pb2.ImageInput]:
    return [catalog_pb2.ImageInput(url=i.url, alt=i.alt) for i in images]
