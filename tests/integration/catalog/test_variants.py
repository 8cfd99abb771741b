"""Variants and images over gRPC: options from the product's groups, SKUs unique across the
catalog, images bounded, and every refusal naming its field and writing nothing."""

from __future__ import annotations

import grpc
import pytest

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2
from servicekit.rpc_status import parse_rpc_error
from tests.integration.catalog.variant_calls import (
    option,
    rpc_error,
    shirt_request,
    variant,
    violated,
)

pytestmark = pytest.mark.usefixtures("clean_catalog")


async def counts(catalog) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """Products, variants, images and outbox rows: what a refused request must not change."""
    [row] = await catalog.execute(
        "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM product_variants), "
        "(SELECT count(*) FROM product_images), (SELECT count(*) FROM outbox)"
    )
    return tuple(row)


async def test_a_product_with_sizes_colours_and_images_shows_each_variant_and_its_price_range(catalog):
    category = await catalog.category()

    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product

    assert [g.name for g in shirt.option_groups] == ["Size", "Colour"]
    small, large = shirt.variants
    # Options are spelled as the groups spell them, in the groups' order.
    assert [(o.group, o.value) for o in large.options] == [("Size", "XL"), ("Colour", "Blue")]
    assert (small.name, large.name) == ("S / Red", "XL / Blue")
    # A variant without a price of its own has the product's.
    assert (small.price.amount_minor, large.price.amount_minor) == (2000, 2400)
    assert (shirt.min_price.amount_minor, shirt.max_price.amount_minor) == (2000, 2400)
    assert shirt.stock == 13
    assert [(i.url, i.alt, i.position) for i in shirt.images] == [
        ("https://img.example.com/tee-front.jpg", "Front", 0),
        ("https://img.example.com/tee-back.jpg", "Back", 1),
    ]
    read = (await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=shirt.id))).product
    assert read == shirt


async def test_a_product_created_without_variants_has_one_default_variant_with_its_sku_and_stock(catalog):
    category = await catalog.category()
    lamp = await catalog.product(category, sku="LAMP-42", stock=6, price_minor=1500)

    [default] = lamp.variants
    assert (default.sku, default.name, list(default.options), default.stock) == ("LAMP-42", "Default", [], 6)
    assert default.price.amount_minor == 1500


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ([option("Fit", "Slim")], "variants[0].options"),
        ([option("Size", "XXL")], "variants[0].options"),
        ([option("Size", "S"), option("size", "M")], "variants[0].options"),
    ],
)
async def test_options_outside_the_products_groups_are_refused_naming_the_variant(catalog, options, field):
    category = await catalog.category()
    before = await counts(catalog)
    request = shirt_request(category.slug)
    del request.variants[0].options[:]
    request.variants[0].options.extend(options)

    error = await rpc_error(catalog.stub.CreateProduct(request, metadata=catalog.admin))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == [field]
    assert await counts(catalog) == before


async def test_two_variants_with_the_same_options_or_sku_are_refused(catalog):
    category = await catalog.category()
    request = shirt_request(category.slug)
    twin = variant(request.variants[0].sku, "s", "RED")
    request.variants.append(twin)
    before = await counts(catalog)

    error = await rpc_error(catalog.stub.CreateProduct(request, metadata=catalog.admin))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == ["variants[2].sku", "variants[2].options"]
    assert await counts(catalog) == before


async def test_a_sku_is_unique_across_products_and_variants(catalog):
    category = await catalog.category()
    lamp = await catalog.product(category, sku="LAMP-1")
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product
    before = await counts(catalog)

    # A variant may not take another product's SKU, nor another variant's.
    taken_by_product = await rpc_error(
        catalog.stub.AddProductVariant(
            catalog_pb2.AddProductVariantRequest(product_id=shirt.id, variant=variant("lamp-1", "M", "Red")),
            metadata=catalog.admin,
        )
    )
    taken_by_variant = await rpc_error(
        catalog.stub.AddProductVariant(
            catalog_pb2.AddProductVariantRequest(
                product_id=lamp.id, variant=catalog_pb2.VariantInput(sku=shirt.variants[0].sku)
            ),
            metadata=catalog.admin,
        )
    )
    # Nor may a new product take a variant's SKU.
    product_on_variant = await rpc_error(
        catalog.stub.CreateProduct(
            catalog_pb2.CreateProductRequest(
                sku=shirt.variants[1].sku,
                name="Clash",
                price=money_pb2.Money(amount_minor=100, currency="USD"),
                category_slug=category.slug,
            ),
            metadata=catalog.admin,
        )
    )

    for error, field in (
        (taken_by_product, "variant.sku"),
        (taken_by_variant, "variant.sku"),
        (product_on_variant, "sku"),
    ):
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert parse_rpc_error(error).metadata.get("field") == field
    assert await counts(catalog) == before


async def test_variants_are_added_changed_and_archived_but_a_product_keeps_one(catalog):
    category = await catalog.category()
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product

    added = await catalog.stub.AddProductVariant(
        catalog_pb2.AddProductVariantRequest(product_id=shirt.id, variant=variant("TEE-NEW-M", "M", "Red")),
        metadata=catalog.admin,
    )
    assert [v.sku for v in added.product.variants][-1] == "TEE-NEW-M"
    changed = await catalog.stub.UpdateProductVariant(
        catalog_pb2.UpdateProductVariantRequest(
            variant_id=added.variant.id,
            options=catalog_pb2.VariantOptions(options=[option("Size", "M"), option("Colour", "Blue")]),
            price=money_pb2.Money(amount_minor=3100, currency="USD"),
        ),
        metadata=catalog.admin,
    )
    assert (changed.variant.name, changed.variant.price.amount_minor) == ("M / Blue", 3100)
    assert changed.product.max_price.amount_minor == 3100
    clash = await rpc_error(
        catalog.stub.UpdateProductVariant(
            catalog_pb2.UpdateProductVariantRequest(
                variant_id=added.variant.id,
                options=catalog_pb2.VariantOptions(options=[option("Size", "S"), option("Colour", "Red")]),
            ),
            metadata=catalog.admin,
        )
    )
    assert clash.code() == grpc.StatusCode.ALREADY_EXISTS

    for v in shirt.variants:
        await catalog.stub.DeleteProductVariant(
            catalog_pb2.DeleteProductVariantRequest(variant_id=v.id), metadata=catalog.admin
        )
    last = await rpc_error(
        catalog.stub.DeleteProductVariant(
            catalog_pb2.DeleteProductVariantRequest(variant_id=added.variant.id), metadata=catalog.admin
        )
    )
    assert last.code() == grpc.StatusCode.FAILED_PRECONDITION
    read = (await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=shirt.id))).product
    assert [v.id for v in read.variants] == [added.variant.id]


async def test_variant_and_image_writes_need_an_admin(catalog):
    category = await catalog.category()
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product
    before = await counts(catalog)
    calls = {
        "add": lambda md: catalog.stub.AddProductVariant(
            catalog_pb2.AddProductVariantRequest(product_id=shirt.id, variant=variant("X-1", "M", "Red")),
            metadata=md,
        ),
        "update": lambda md: catalog.stub.UpdateProductVariant(
            catalog_pb2.UpdateProductVariantRequest(variant_id=shirt.variants[0].id, name="Hacked"),
            metadata=md,
        ),
        "delete": lambda md: catalog.stub.DeleteProductVariant(
            catalog_pb2.DeleteProductVariantRequest(variant_id=shirt.variants[0].id), metadata=md
        ),
        "images": lambda md: catalog.stub.SetProductImages(
            catalog_pb2.SetProductImagesRequest(product_id=shirt.id), metadata=md
        ),
        "low stock": lambda md: catalog.stub.ListLowStock(catalog_pb2.ListLowStockRequest(), metadata=md),
        "inventory": lambda md: catalog.stub.GetInventory(
            catalog_pb2.GetInventoryRequest(variant_id=shirt.variants[0].id), metadata=md
        ),
    }
    for name, call in calls.items():
        assert (
            await rpc_error(call(catalog.token("CUSTOMER")))
        ).code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert (await rpc_error(call([]))).code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert await counts(catalog) == before


@pytest.mark.parametrize(
    ("images", "field"),
    [
        ([("ftp://img.example.com/a.jpg", "")], "images[0].url"),
        ([("javascript:alert(1)", "")], "images[0].url"),
        ([("https://img.example.com/" + "a" * 2048, "")], "images[0].url"),
        ([("", "no url")], "images[0].url"),
        ([("https://img.example.com/a.jpg", "x" * 501)], "images[0].alt"),
        ([("https://img.example.com/a.jpg", "")] * 21, "images"),
    ],
)
async def test_images_must_be_web_urls_of_bounded_length_and_count(catalog, images, field):
    category = await catalog.category()
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product
    before = await counts(catalog)

    error = await rpc_error(
        catalog.stub.SetProductImages(
            catalog_pb2.SetProductImagesRequest(
                product_id=shirt.id, images=[catalog_pb2.ImageInput(url=u, alt=a) for u, a in images]
            ),
            metadata=catalog.admin,
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == [field]
    assert await counts(catalog) == before


async def test_setting_images_replaces_them_in_order_and_twenty_are_allowed(catalog):
    category = await catalog.category()
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product
    urls = [f"http://img.example.com/{i}.jpg" for i in range(20)]

    updated = await catalog.stub.SetProductImages(
        catalog_pb2.SetProductImagesRequest(
            product_id=shirt.id, images=[catalog_pb2.ImageInput(url=u) for u in reversed(urls)]
        ),
        metadata=catalog.admin,
    )

    assert [i.url for i in updated.product.images] == list(reversed(urls))
    read = (await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=shirt.id))).product
    assert read.images[0].url == urls[-1]


async def test_search_finds_a_product_by_a_variants_sku_and_by_option_values(catalog):
    category = await catalog.category()
    shirt = (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product
    await catalog.product(category, name="Red Lamp Shade")  # "red" in a name, not an option

    async def found(query: str) -> list[str]:
        page = await catalog.stub.SearchProducts(catalog_pb2.SearchProductsRequest(query=query))
        return [p.name for p in page.products]

    assert await found(shirt.variants[1].sku.lower()) == ["Organic Cotton Tee"]
    assert await found("xl") == ["Organic Cotton Tee"]
    assert set(await found("red")) == {"Organic Cotton Tee", "Red Lamp Shade"}
    # A variant added later is found too; an archived one no longer is.
    added = await catalog.stub.AddProductVariant(
        catalog_pb2.AddProductVariantRequest(product_id=shirt.id, variant=variant("TEE-ZED-9", "M", "Blue")),
        metadata=catalog.admin,
    )
    assert await found("TEE-ZED-9") == ["Organic Cotton Tee"]
    await catalog.stub.DeleteProductVariant(
        catalog_pb2.DeleteProductVariantRequest(variant_id=added.variant.id), metadata=catalog.admin
    )
    assert await found("TEE-ZED-9") == []
