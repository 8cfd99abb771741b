"""CatalogService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from grpc import aio

from catalog.convert import category_to_proto, inventory_to_proto, product_to_proto, variant_to_proto
from catalog.listing import ProductFilter
from catalog.service import CatalogService
from catalog.stock_levels import StockLevels
from catalog.variant_rules import VariantInput
from catalog.variants import VariantChange, VariantService
from catalog.views import ProductPage, ProductView, VariantView
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from servicekit import money, pages
from servicekit.context import current_caller
from servicekit.grpc_server import Registration

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
SORT_FROM_PROTO = {
    catalog_pb2.PRODUCT_SORT_NEWEST: "NEWEST",
    catalog_pb2.PRODUCT_SORT_PRICE_ASC: "PRICE_ASC",
    catalog_pb2.PRODUCT_SORT_PRICE_DESC: "PRICE_DESC",
    catalog_pb2.PRODUCT_SORT_NAME: "NAME",
    catalog_pb2.PRODUCT_SORT_RELEVANCE: "RELEVANCE",
}


def _optional(message: Message, name: str) -> Any:
    """The value of an `optional` field, None when it is not set."""
    return getattr(message, name) if message.HasField(name) else None


def filter_from_proto(message: catalog_pb2.ProductFilter) -> ProductFilter:
    return ProductFilter(
        category_slug=message.category_slug,
        min_price_minor=_optional(message, "min_price_minor"),
        max_price_minor=_optional(message, "max_price_minor"),
        min_price=_optional(message, "min_price"),
        max_price=_optional(message, "max_price"),
        in_stock_only=message.in_stock_only,
        featured_only=message.featured_only,
        include_archived=message.include_archived,
    )


def _sort(value: catalog_pb2.ProductSort.ValueType, default: str) -> str:
    # An unknown enum number is passed on as such, for the use case to refuse.
    return (
        default if value == catalog_pb2.PRODUCT_SORT_UNSPECIFIED else SORT_FROM_PROTO.get(value, str(value))
    )


def _page(page: ProductPage) -> dict[str, Any]:
    return {
        "products": [product_to_proto(p) for p in page.products],
        **pages.page_fields(page),
    }


def _options(options: Any) -> list[tuple[str, str]]:
    return [(o.group, o.value) for o in options]


def variant_from_proto(message: catalog_pb2.VariantInput) -> VariantInput:
    price_minor, currency = money.from_proto(message.price) if message.HasField("price") else (None, None)
    return VariantInput(
        sku=message.sku,
        name=message.name,
        options=_options(message.options),
        price_minor=price_minor,
        currency=currency,
        stock=message.stock,
        low_stock_threshold=_optional(message, "low_stock_threshold"),
    )


def _with_variant(product: ProductView, variant: VariantView) -> dict[str, Any]:
    return {"product": product_to_proto(product), "variant": variant_to_proto(variant, product.currency)}


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, service: CatalogService, variants: VariantService, stock_levels: StockLevels) -> None:
        self.service = service
        self.variants = variants
        self.stock_levels = stock_levels

    async def CreateProduct(
        self, request: catalog_pb2.CreateProductRequest, context: aio.ServicerContext
    ) -> catalog_pb2.CreateProductResponse:
        price_minor, currency = money.from_proto(request.price)
        product = await self.service.create_product(
            current_caller(),
            sku=request.sku,
            name=request.name,
            description=request.description,
            price_minor=price_minor,
            currency=currency,
            category_slug=request.category_slug,
            stock=request.stock,
            featured=request.featured,
            low_stock_threshold=_optional(request, "low_stock_threshold"),
            option_groups=[(g.name, list(g.values)) for g in request.option_groups],
            variants=[variant_from_proto(v) for v in request.variants],
            images=[(i.url, i.alt) for i in request.images],
        )
        return catalog_pb2.CreateProductResponse(product=product_to_proto(product))

    async def UpdateProduct(
        self, request: catalog_pb2.UpdateProductRequest, context: aio.ServicerContext
    ) -> catalog_pb2.UpdateProductResponse:
        price_minor, currency = money.from_proto(request.price) if request.HasField("price") else (None, None)
        product = await self.service.update_product(
            current_caller(),
            product_id=request.product_id,
            sku=_optional(request, "sku"),
            name=_optional(request, "name"),
            description=_optional(request, "description"),
            price_minor=price_minor,
            currency=currency,
            category_slug=_optional(request, "category_slug"),
            featured=_optional(request, "featured"),
            low_stock_threshold=_optional(request, "low_stock_threshold"),
        )
        return catalog_pb2.UpdateProductResponse(product=product_to_proto(product))

    async def ArchiveProduct(
        self, request: catalog_pb2.ArchiveProductRequest, context: aio.ServicerContext
    ) -> catalog_pb2.ArchiveProductResponse:
        product = await self.service.archive_product(current_caller(), product_id=request.product_id)
        return catalog_pb2.ArchiveProductResponse(product=product_to_proto(product))

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: aio.ServicerContext
    ) -> catalog_pb2.GetProductResponse:
        product = await self.service.get_product(product_id=request.product_id)
        return catalog_pb2.GetProductResponse(product=product_to_proto(product))

    async def BatchGetProducts(
        self, request: catalog_pb2.BatchGetProductsRequest, context: aio.ServicerContext
    ) -> catalog_pb2.BatchGetProductsResponse:
        products = await self.service.batch_get_products(product_ids=list(request.product_ids))
        return catalog_pb2.BatchGetProductsResponse(products=[product_to_proto(p) for p in products])

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: aio.ServicerContext
    ) -> catalog_pb2.ListProductsResponse:
        page = await self.service.list_products(
            current_caller(),
            filter=filter_from_proto(request.filter),
            sort=_sort(request.sort, "NEWEST"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return catalog_pb2.ListProductsResponse(**_page(page))

    async def SearchProducts(
        self, request: catalog_pb2.SearchProductsRequest, context: aio.ServicerContext
    ) -> catalog_pb2.SearchProductsResponse:
        page = await self.service.search_products(
            current_caller(),
            query=request.query,
            filter=filter_from_proto(request.filter),
            sort=_sort(request.sort, "RELEVANCE"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return catalog_pb2.SearchProductsResponse(**_page(page))

    async def ListCategories(
        self, request: catalog_pb2.ListCategoriesRequest, context: aio.ServicerContext
    ) -> catalog_pb2.ListCategoriesResponse:
        categories = await self.service.list_categories()
        return catalog_pb2.ListCategoriesResponse(categories=[category_to_proto(c) for c in categories])

    async def CreateCategory(
        self, request: catalog_pb2.CreateCategoryRequest, context: aio.ServicerContext
    ) -> catalog_pb2.CreateCategoryResponse:
        category = await self.service.create_category(current_caller(), name=request.name, slug=request.slug)
        return catalog_pb2.CreateCategoryResponse(category=category_to_proto(category))

    async def AdjustStock(
        self, request: catalog_pb2.AdjustStockRequest, context: aio.ServicerContext
    ) -> catalog_pb2.AdjustStockResponse:
        product = await self.service.adjust_stock(
            current_caller(),
            product_id=request.product_id,
            delta=request.delta,
            reason=request.reason,
            variant_id=request.variant_id,
        )
        return catalog_pb2.AdjustStockResponse(product=product_to_proto(product))

    async def GetStock(
        self, request: catalog_pb2.GetStockRequest, context: aio.ServicerContext
    ) -> catalog_pb2.GetStockResponse:
        levels = await self.service.get_stock(current_caller(), product_ids=list(request.product_ids))
        return catalog_pb2.GetStockResponse(
            levels=[
                catalog_pb2.StockLevel(
                    product_id=level.product_id,
                    available=level.available,
                    reserved=level.reserved,
                    low_stock_threshold=level.low_stock_threshold,
                )
                for level in levels
            ]
        )

    async def AddProductVariant(
        self, request: catalog_pb2.AddProductVariantRequest, context: aio.ServicerContext
    ) -> catalog_pb2.AddProductVariantResponse:
        product, variant = await self.variants.add(
            current_caller(), product_id=request.product_id, variant=variant_from_proto(request.variant)
        )
        return catalog_pb2.AddProductVariantResponse(**_with_variant(product, variant))

    async def UpdateProductVariant(
        self, request: catalog_pb2.UpdateProductVariantRequest, context: aio.ServicerContext
    ) -> catalog_pb2.UpdateProductVariantResponse:
        price_minor, currency = money.from_proto(request.price) if request.HasField("price") else (None, None)
        change = VariantChange(
            sku=_optional(request, "sku"),
            name=_optional(request, "name"),
            options=_options(request.options.options) if request.HasField("options") else None,
            price_minor=price_minor,
            currency=currency,
            low_stock_threshold=_optional(request, "low_stock_threshold"),
        )
        product, variant = await self.variants.update(
            current_caller(), variant_id=request.variant_id, change=change
        )
        return catalog_pb2.UpdateProductVariantResponse(**_with_variant(product, variant))

    async def DeleteProductVariant(
        self, request: catalog_pb2.DeleteProductVariantRequest, context: aio.ServicerContext
    ) -> catalog_pb2.DeleteProductVariantResponse:
        product = await self.variants.delete(current_caller(), variant_id=request.variant_id)
        return catalog_pb2.DeleteProductVariantResponse(product=product_to_proto(product))

    async def SetProductImages(
        self, request: catalog_pb2.SetProductImagesRequest, context: aio.ServicerContext
    ) -> catalog_pb2.SetProductImagesResponse:
        product = await self.variants.set_images(
            current_caller(), product_id=request.product_id, images=[(i.url, i.alt) for i in request.images]
        )
        return catalog_pb2.SetProductImagesResponse(product=product_to_proto(product))

    async def ListLowStock(
        self, request: catalog_pb2.ListLowStockRequest, context: aio.ServicerContext
    ) -> catalog_pb2.ListLowStockResponse:
        page = await self.stock_levels.low_stock(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        currency = self.service.currency
        return catalog_pb2.ListLowStockResponse(
            variants=[
                catalog_pb2.LowStockVariant(variant=variant_to_proto(v, currency), product_name=name)
                for name, v in page.variants
            ],
            cursors=page.cursors,
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )

    async def GetInventory(
        self, request: catalog_pb2.GetInventoryRequest, context: aio.ServicerContext
    ) -> catalog_pb2.GetInventoryResponse:
        inventory = await self.stock_levels.inventory(current_caller(), variant_id=request.variant_id)
        return catalog_pb2.GetInventoryResponse(inventory=inventory_to_proto(inventory))


def registration(servicer: CatalogServicer) -> Registration:
    return (catalog_pb2_grpc.add_CatalogServiceServicer_to_server, servicer)
