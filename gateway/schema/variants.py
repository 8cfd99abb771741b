"""Administering variants, images and stock: add, change and delete variants, replace images,
read one variant's inventory and the variants running low."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry

from ecommerce.catalog.v1 import catalog_pb2
from gateway.context import Context, Info
from gateway.errors import ApiError
from gateway.ids import canonical_id
from gateway.schema.catalog import Product, load_product
from gateway.schema.common import Connection, First, arguments, connection_from, paged
from gateway.schema.variant_types import (
    ProductImageInput,
    ProductVariant,
    ProductVariantInput,
    VariantOptionInput,
    images_to_proto,
    money,
)

VariantId = Annotated[strawberry.ID, strawberry.argument(description="The variant's id.")]


@strawberry.type(description="One variant's units: on hand = available + reserved.")
class Inventory:
    variant_id: strawberry.ID = strawberry.field(description="The variant.")
    sku: str = strawberry.field(description="The variant's SKU.")
    on_hand: int = strawberry.field(description="Units in the warehouse.")
    reserved: int = strawberry.field(description="Units held for orders not yet paid or released.")
    available: int = strawberry.field(description="Units that can still be bought.")
    low_stock_threshold: int = strawberry.field(description="At or below this, a low-stock alert is raised.")


@strawberry.input(
    description="Changes to a variant; only the fields given change. Stock changes by `adjustStock`."
)
class UpdateProductVariantInput:
    sku: str | None = strawberry.field(default=None, description="New SKU, unique across the catalog.")
    name: str | None = strawberry.field(default=None, description="New display name.")
    options: list[VariantOptionInput] | None = strawberry.field(
        default=None, description="New options, replacing all of them."
    )
    price: Decimal | None = strawberry.field(
        default=None, description="Its own unit price, in the product's currency."
    )
    low_stock_threshold: int | None = strawberry.field(
        default=None, description="Its own low-stock threshold."
    )


async def _currency(ctx: Context, product_id: str) -> str:
    product = await load_product(ctx, product_id)
    if product is None:
        raise ApiError("product not found", "NOT_FOUND")
    return product.price.currency


@strawberry.type
class VariantQuery:
    @strawberry.field(
        description="Variants at or under their low-stock threshold, lowest stock first. ADMIN only."
    )
    async def low_stock(
        self,
        info: Info,
        first: First = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`endCursor` to continue after.")
        ] = None,
    ) -> Connection[ProductVariant]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.catalog.ListLowStock, paged(catalog_pb2.ListLowStockRequest(), first, after)
        )
        return connection_from(response, [v.variant for v in response.variants], ProductVariant.from_proto)

    @strawberry.field(description="One variant's units on hand, reserved and available. ADMIN only.")
    async def inventory(self, info: Info, variant_id: VariantId) -> Inventory:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.catalog.GetInventory,
            catalog_pb2.GetInventoryRequest(variant_id=canonical_id(variant_id, "variantId")),
        )
        found = response.inventory
        return Inventory(
            variant_id=strawberry.ID(found.variant_id),
            sku=found.sku,
            on_hand=found.on_hand,
            reserved=found.reserved,
            available=found.available,
            low_stock_threshold=found.low_stock_threshold,
        )


@strawberry.type
class VariantMutation:
    @strawberry.mutation(
        description="Add a variant to a product. ADMIN only. BAD_USER_INPUT naming the field for options "
        "outside the product's groups or a combination it has; CONFLICT when the SKU is taken."
    )
    async def add_product_variant(
        self,
        info: Info,
        product_id: Annotated[strawberry.ID, strawberry.argument(description="The product.")],
        input: ProductVariantInput,
    ) -> ProductVariant:
        ctx = info.context
        ctx.require_admin()
        pid = canonical_id(product_id, "productId")
        currency = await _currency(ctx, pid)
        with arguments(variant="input"):
            response = await ctx.call(
                ctx.services.catalog.AddProductVariant,
                catalog_pb2.AddProductVariantRequest(
                    product_id=pid, variant=input.to_proto(currency, "input")
                ),
            )
        return ProductVariant.from_proto(response.variant)

    @strawberry.mutation(description="Change a variant; only the fields given change. ADMIN only.")
    async def update_product_variant(
        self, info: Info, id: VariantId, input: UpdateProductVariantInput
    ) -> ProductVariant:
        ctx = info.context
        ctx.require_admin()
        vid = canonical_id(id)
        request = catalog_pb2.UpdateProductVariantRequest(variant_id=vid)
        for name in ("sku", "name", "low_stock_threshold"):
            value = getattr(input, name)
            if value is not None:
                setattr(request, name, value)
        if input.options is not None:
            request.options.options.extend(
                catalog_pb2.VariantOption(group=o.group, value=o.value) for o in input.options
            )
        if input.price is not None:
            # The price is read in the product's currency, which the variant's inventory leads to.
            with arguments(variantId="id"):
                found = await ctx.call(
                    ctx.services.catalog.GetInventory, catalog_pb2.GetInventoryRequest(variant_id=vid)
                )
            currency = await _currency(ctx, found.inventory.product_id)
            request.price.CopyFrom(money(input.price, currency, "input.price"))
        with arguments(variantId="id"):
            response = await ctx.call(ctx.services.catalog.UpdateProductVariant, request)
        return ProductVariant.from_proto(response.variant)

    @strawberry.mutation(
        description="Delete a variant: it can no longer be bought; orders that hold it keep it. ADMIN only. "
        "CONFLICT for a product's last variant."
    )
    async def delete_product_variant(self, info: Info, id: VariantId) -> Product:
        ctx = info.context
        ctx.require_admin()
        with arguments(variantId="id"):
            response = await ctx.call(
                ctx.services.catalog.DeleteProductVariant,
                catalog_pb2.DeleteProductVariantRequest(variant_id=canonical_id(id)),
            )
        return Product.from_proto(response.product)

    @strawberry.mutation(
        description="Replace a product's images, in display order (the first is featured); an empty list "
        "removes them. At most 20, http(s) URLs of at most 2,048 characters. ADMIN only."
    )
    async def set_product_images(
        self,
        info: Info,
        product_id: Annotated[strawberry.ID, strawberry.argument(description="The product.")],
        images: list[ProductImageInput],
    ) -> Product:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.catalog.SetProductImages,
            catalog_pb2.SetProductImagesRequest(
                product_id=canonical_id(product_id, "productId"), images=images_to_proto(images)
            ),
        )
        return Product.from_proto(response.product)
