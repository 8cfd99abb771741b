"""The catalog: products, categories, listing, search and stock; every product lookup of a request
goes through one DataLoader onto one BatchGetProducts call."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated

import strawberry
from google.protobuf import timestamp_pb2

from ecommerce.catalog.v1 import catalog_pb2
from gateway.context import Context, Info
from gateway.errors import ApiError, bad_input
from gateway.ids import canonical_id
from gateway.read_models import Money, to_datetime
from gateway.responsecache import read_for_the_caller, read_product
from gateway.schema.common import Connection, First, arguments, connection_from, paged
from gateway.schema.variant_types import (
    OptionGroup,
    OptionGroupInput,
    PriceRange,
    ProductImage,
    ProductImageInput,
    ProductVariant,
    ProductVariantInput,
    images_from_proto,
    images_to_proto,
    money,
    option_groups_from_proto,
)


@strawberry.enum(description="Orders of a product listing.")
class ProductSort(Enum):
    NEWEST = strawberry.enum_value("NEWEST", description="Newest first.")
    PRICE_ASC = strawberry.enum_value("PRICE_ASC", description="Cheapest first.")
    PRICE_DESC = strawberry.enum_value("PRICE_DESC", description="Most expensive first.")
    NAME = strawberry.enum_value("NAME", description="By name, A to Z, ignoring case.")
    RELEVANCE = strawberry.enum_value(
        "RELEVANCE", description="Best search match first; `searchProducts` only."
    )


SORT_TO_PROTO = {
    ProductSort.NEWEST: catalog_pb2.PRODUCT_SORT_NEWEST,
    ProductSort.PRICE_ASC: catalog_pb2.PRODUCT_SORT_PRICE_ASC,
    ProductSort.PRICE_DESC: catalog_pb2.PRODUCT_SORT_PRICE_DESC,
    ProductSort.NAME: catalog_pb2.PRODUCT_SORT_NAME,
    ProductSort.RELEVANCE: catalog_pb2.PRODUCT_SORT_RELEVANCE,
}


@strawberry.type(description="A group of products, e.g. Electronics.")
class Category:
    id: strawberry.ID = strawberry.field(description="Category id (UUID).")
    slug: str = strawberry.field(description='URL-safe key, e.g. "home-kitchen"; filter products by it.')
    name: str = strawberry.field(description="Display name.")
    known_count: strawberry.Private[int | None] = None

    @strawberry.field(description="How many products of this category can be listed (archived ones not).")
    async def product_count(self, info: Info) -> int:
        if self.known_count is not None:
            return self.known_count
        listed = await info.context.loaders.category_by_id.load(str(self.id))
        return listed.product_count if listed is not None else 0

    @classmethod
    def from_proto(cls, message: catalog_pb2.Category, *, counted: bool) -> Category:
        return cls(
            id=strawberry.ID(message.id),
            slug=message.slug,
            name=message.name,
            known_count=message.product_count if counted else None,
        )


@strawberry.type(description="Something the shop sells.")
class Product:
    id: strawberry.ID = strawberry.field(description="Product id (UUID).")
    sku: str = strawberry.field(description="Stock-keeping unit, unique in the catalog, upper case.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Plain-text description; may contain line breaks.")
    price: Money = strawberry.field(description="Price of one unit.")
    category: Category = strawberry.field(description="The category it is listed in.")
    stock: int = strawberry.field(description="Units that can still be bought right now.")
    # A plain value, not a resolver: a resolver costs several times as much per item of a page.
    in_stock: bool = strawberry.field(description="Whether at least one unit can be bought.")
    featured: bool = strawberry.field(description="Whether the shop highlights it.")
    archived: bool = strawberry.field(
        description="Deleted by an administrator: no longer listed or sold, still shown in past orders."
    )
    # Converted only when asked for: a listing of 20 products rarely shows when each was made.
    created: strawberry.Private[timestamp_pb2.Timestamp]
    updated: strawberry.Private[timestamp_pb2.Timestamp]
    message: strawberry.Private[catalog_pb2.Product]

    @strawberry.field(description="What is bought: its variants, at least one. `price` is the product's own.")
    def variants(self) -> list[ProductVariant]:
        return [ProductVariant.from_proto(v) for v in self.message.variants]

    @strawberry.field(description="The option groups its variants choose from, e.g. Size and Colour.")
    def option_groups(self) -> list[OptionGroup]:
        return option_groups_from_proto(self.message)

    @strawberry.field(description="Its pictures, in display order.")
    def images(self) -> list[ProductImage]:
        return images_from_proto(self.message)

    @strawberry.field(description="The first image; null when it has none.")
    def featured_image(self) -> ProductImage | None:
        images = images_from_proto(self.message)
        return images[0] if images else None

    @strawberry.field(description="The lowest and highest price of its variants.")
    def price_range(self) -> PriceRange:
        return PriceRange(
            min=Money.from_proto(self.message.min_price), max=Money.from_proto(self.message.max_price)
        )

    @strawberry.field(
        description="Stock at or below which its variants raise a low-stock alert (unless a variant has its "
        "own); 0 turns alerts off. ADMIN only: null for anyone else."
    )
    def low_stock_threshold(self, info: Info) -> int | None:
        read_for_the_caller()  # its answer depends on who asks: never answered from the cache
        caller = info.context.caller
        return self.message.low_stock_threshold if caller is not None and caller.is_admin else None

    @strawberry.field(description="When it was added to the catalog.")
    def created_at(self) -> datetime:
        return to_datetime(self.created)

    @strawberry.field(description="When it last changed.")
    def updated_at(self) -> datetime:
        return to_datetime(self.updated)

    @classmethod
    def from_proto(cls, message: catalog_pb2.Product) -> Product:
        read_product(message.id)  # a cached answer showing it is stale once its stock changes
        return cls(
            id=strawberry.ID(message.id),
            sku=message.sku,
            name=message.name,
            description=message.description,
            price=Money.from_proto(message.price),
            category=Category.from_proto(message.category, counted=False),
            stock=message.stock,
            in_stock=message.stock > 0,
            featured=message.featured,
            archived=message.archived,
            created=message.created_at,
            updated=message.updated_at,
            message=message,
        )


@strawberry.input(description="Conditions on a product listing; the ones left out do not filter.")
class ProductFilter:
    category_slug: str | None = strawberry.field(default=None, description="Only this category.")
    min_price: Decimal | None = strawberry.field(
        default=None, description='Lowest price, inclusive, in the shop\'s currency, e.g. "10.00".'
    )
    max_price: Decimal | None = strawberry.field(
        default=None, description="Highest price, inclusive, in the shop's currency."
    )
    in_stock: bool | None = strawberry.field(
        default=None, description="true: only products that can be bought now; false or null: all."
    )
    featured: bool | None = strawberry.field(
        default=None, description="true: only featured products; false or null: all."
    )
    include_archived: bool | None = strawberry.field(
        default=None, description="ADMIN only: list deleted (archived) products too."
    )

    def to_proto(self) -> catalog_pb2.ProductFilter:
        if self.include_archived:
            read_for_the_caller()  # administrators only: never answered from the cache
        message = catalog_pb2.ProductFilter(
            category_slug=self.category_slug or "",
            in_stock_only=bool(self.in_stock),
            featured_only=bool(self.featured),
            include_archived=bool(self.include_archived),
        )
        if self.min_price is not None:
            message.min_price = format(self.min_price, "f")
        if self.max_price is not None:
            message.max_price = format(self.max_price, "f")
        return message


@strawberry.input(description="A new product.")
class CreateProductInput:
    sku: str = strawberry.field(description="Unique stock-keeping unit: letters, digits, '.', '_', '-'.")
    name: str = strawberry.field(description="1 to 200 characters.")
    price: Decimal = strawberry.field(description='Unit price, above 0 and at most 1,000,000, e.g. "19.99".')
    currency: str = strawberry.field(description="ISO 4217 code of the price, e.g. USD.")
    category_slug: str = strawberry.field(description="Slug of an existing category.")
    description: str = strawberry.field(default="", description="Up to 10,000 characters.")
    stock: int = strawberry.field(default=0, description="Units on hand, 0 or more.")
    featured: bool = strawberry.field(default=False, description="Highlight it in the shop.")
    low_stock_threshold: int | None = strawberry.field(
        default=None,
        description="Stock at or below which the shop is warned; the shop's default when left out.",
    )
    option_groups: list[OptionGroupInput] = strawberry.field(
        default_factory=list, description="At most 10 groups its variants choose from, e.g. Size and Colour."
    )
    variants: list[ProductVariantInput] = strawberry.field(
        default_factory=list,
        description="At most 100. Left out: one variant with the product's SKU and stock. Given: `stock` "
        "stays 0 and each variant has its own.",
    )
    images: list[ProductImageInput] = strawberry.field(
        default_factory=list, description="At most 20 pictures, in display order."
    )


@strawberry.input(
    description="Changes to a product; only the fields given change. Stock changes by `adjustStock`."
)
class UpdateProductInput:
    sku: str | None = strawberry.field(default=None, description="New stock-keeping unit.")
    name: str | None = strawberry.field(default=None, description="New name, 1 to 200 characters.")
    description: str | None = strawberry.field(default=None, description="New description.")
    price: Decimal | None = strawberry.field(default=None, description="New unit price.")
    currency: str | None = strawberry.field(
        default=None,
        description="New currency; the price is read in it (the current price when none is given).",
    )
    category_slug: str | None = strawberry.field(default=None, description="Move it to this category.")
    featured: bool | None = strawberry.field(default=None, description="Highlight it, or not.")
    low_stock_threshold: int | None = strawberry.field(default=None, description="New low-stock threshold.")


def product_connection(
    response: catalog_pb2.ListProductsResponse | catalog_pb2.SearchProductsResponse,
) -> Connection[Product]:
    return connection_from(response, response.products, Product.from_proto)


async def load_product(ctx: Context, product_id: str) -> Product | None:
    """A product through the request's `product_by_id` loader; None for a malformed or unknown id."""
    message = await ctx.loaders.product_by_id.load(product_id)
    return Product.from_proto(message) if message is not None else None


# Listings of products name the cursor of any edge, not only the last.
After = Annotated[
    str | None, strawberry.argument(description="`endCursor` (or an edge's cursor) to continue after.")
]
FilterArgument = Annotated[
    ProductFilter | None, strawberry.argument(description="Conditions on the products.")
]


@strawberry.type
class CatalogQuery:
    @strawberry.field(
        description="One product by id, archived ones included; null when there is none. Public."
    )
    async def product(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The product's id.")]
    ) -> Product | None:
        return await load_product(info.context, canonical_id(id))

    @strawberry.field(description="Products that can be bought, filtered and sorted, page by page. Public.")
    async def products(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
        filter: FilterArgument = None,
        sort: Annotated[
            ProductSort, strawberry.argument(description="Order of the products.")
        ] = ProductSort.NEWEST,
    ) -> Connection[Product]:
        ctx = info.context
        if sort is ProductSort.RELEVANCE:
            raise bad_input("sort", "RELEVANCE is for searchProducts only")
        response = await ctx.call(
            ctx.services.catalog.ListProducts,
            paged(
                catalog_pb2.ListProductsRequest(
                    filter=(filter or ProductFilter()).to_proto(), sort=SORT_TO_PROTO[sort]
                ),
                first,
                after,
            ),
        )
        return product_connection(response)

    @strawberry.field(
        description="Search by words, best match first: English stemming, prefixes and typos of names "
        'match; "quoted phrases", -excluded words and OR work as in web search. Public.'
    )
    async def search_products(
        self,
        info: Info,
        query: Annotated[str, strawberry.argument(description="1 to 200 characters, not only punctuation.")],
        first: First = 20,
        after: After = None,
        filter: FilterArgument = None,
        sort: Annotated[
            ProductSort, strawberry.argument(description="Order of the matches; best match first by default.")
        ] = ProductSort.RELEVANCE,
    ) -> Connection[Product]:
        ctx = info.context
        response = await ctx.call(
            ctx.services.catalog.SearchProducts,
            paged(
                catalog_pb2.SearchProductsRequest(
                    query=query, filter=(filter or ProductFilter()).to_proto(), sort=SORT_TO_PROTO[sort]
                ),
                first,
                after,
            ),
        )
        return product_connection(response)

    @strawberry.field(description="Every category, by name, with its product count. Public.")
    async def categories(self, info: Info) -> list[Category]:
        ctx = info.context
        response = await ctx.call(ctx.services.catalog.ListCategories, catalog_pb2.ListCategoriesRequest())
        return [Category.from_proto(c, counted=True) for c in response.categories]


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Add a product. ADMIN only. CONFLICT when the SKU is taken.")
    async def create_product(self, info: Info, input: CreateProductInput) -> Product:
        ctx = info.context
        ctx.require_admin()
        request = catalog_pb2.CreateProductRequest(
            sku=input.sku,
            name=input.name,
            description=input.description,
            price=money(input.price, input.currency),
            category_slug=input.category_slug,
            stock=input.stock,
            featured=input.featured,
            option_groups=[
                catalog_pb2.OptionGroup(name=g.name, values=g.values) for g in input.option_groups
            ],
            variants=[v.to_proto(input.currency, f"variants[{i}]") for i, v in enumerate(input.variants)],
            images=images_to_proto(input.images),
        )
        if input.low_stock_threshold is not None:
            request.low_stock_threshold = input.low_stock_threshold
        response = await ctx.call(ctx.services.catalog.CreateProduct, request)
        return Product.from_proto(response.product)

    @strawberry.mutation(
        description="Change a product; only the fields given change. ADMIN only. CONFLICT for an archived "
        "product or a taken SKU."
    )
    async def update_product(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The product to change.")],
        input: UpdateProductInput,
    ) -> Product:
        ctx = info.context
        ctx.require_admin()
        pid = canonical_id(id)
        request = catalog_pb2.UpdateProductRequest(product_id=pid)
        for name in ("sku", "name", "description", "category_slug", "featured", "low_stock_threshold"):
            value = getattr(input, name)
            if value is not None:
                setattr(request, name, value)
        if input.price is not None or input.currency is not None:
            price, currency = input.price, input.currency
            if price is None or currency is None:
                current = await load_product(ctx, pid)
                if current is None:
                    raise ApiError("product not found", "NOT_FOUND")
                price = current.price.amount if price is None else price
                currency = current.price.currency if currency is None else currency
            request.price.CopyFrom(money(price, currency))
        with arguments(productId="id"):
            response = await ctx.call(ctx.services.catalog.UpdateProduct, request)
        return Product.from_proto(response.product)

    @strawberry.mutation(
        description="Delete a product: it is archived, so it leaves listings and can no longer be bought, "
        "while past orders keep it. ADMIN only. Deleting it again is harmless."
    )
    async def delete_product(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The product to delete.")],
    ) -> bool:
        ctx = info.context
        ctx.require_admin()
        await ctx.call(
            ctx.services.catalog.ArchiveProduct,
            catalog_pb2.ArchiveProductRequest(product_id=canonical_id(id)),
        )
        return True

    @strawberry.mutation(description="Add a category. ADMIN only. CONFLICT when the slug is taken.")
    async def create_category(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="1 to 100 characters.")],
        slug: Annotated[
            str | None,
            strawberry.argument(
                description='Lower-case words joined by "-"; derived from the name when left out.'
            ),
        ] = None,
    ) -> Category:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.catalog.CreateCategory, catalog_pb2.CreateCategoryRequest(name=name, slug=slug or "")
        )
        return Category.from_proto(response.category, counted=True)

    @strawberry.mutation(
        description="Add units to (or, with a negative delta, remove units from) a variant's stock. ADMIN "
        "only. Stock never goes below zero: such a delta is BAD_USER_INPUT and changes nothing."
    )
    async def adjust_stock(
        self,
        info: Info,
        product_id: Annotated[
            strawberry.ID, strawberry.argument(description="The product whose stock changes.")
        ],
        delta: Annotated[
            int, strawberry.argument(description="Units to add, or to remove when negative; not 0.")
        ],
        reason: Annotated[
            str | None, strawberry.argument(description='Why, for the audit trail, e.g. "delivery".')
        ] = None,
        variant_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The variant whose stock changes; needed when it has several."),
        ] = None,
    ) -> Product:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.catalog.AdjustStock,
            catalog_pb2.AdjustStockRequest(
                product_id=canonical_id(product_id, "productId"),
                delta=delta,
                reason=reason or "",
                variant_id=canonical_id(variant_id, "variantId") if variant_id else "",
            ),
        )
        return Product.from_proto(response.product)
