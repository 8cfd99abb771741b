"""Benchmark data: many realistic products loaded straight into the catalog's tables, and shoppers
registered through the real GraphQL path.

Products are generated from word lists (brand, adjective, material, noun per category) with a fixed
random seed, so every run searches the same catalog. Every tenth product comes in sizes and colours
(a variant per combination, some priced above the product), the others as one "Default" variant,
as the catalog makes them. They go in with one `COPY` per table into the catalog's own `products`
and `product_variants`: their secondary indexes are dropped first and rebuilt afterwards (a GIN
index built in one pass is far faster than one row at a time), then the tables are analyzed. The
columns are read from the database, so the load follows the catalog's schema rather than a copy.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

RANDOM_SEED = 20_260_101
CURRENCY = "USD"
# Products that checkout orders: stock big enough that no run ever sells them out.
CHECKOUT_POOL = 500
CHECKOUT_STOCK = 10_000_000
# Every VARIANT_EVERY-th product has option groups and a variant per combination; checkout orders
# by product id alone, so its pool holds only products with one variant.
VARIANT_EVERY = 10
SIZES = ("S", "M", "L", "XL")
# The demo shop's shipping method that serves the shoppers' German address.
SHIPPING_METHOD = "STANDARD"

# slug -> (display name, nouns, features); a product is "<brand> <adjective> <noun>" with extras.
# Lists are "; "-separated strings so that they stay readable at a glance.


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(";") if word.strip()]


CATEGORIES: dict[str, tuple[str, list[str], list[str]]] = {
    "electronics": (
        "Electronics",
        _words(
            "Headphones; Earbuds; Bluetooth Speaker; Monitor; Keyboard; Mouse; Power Bank; Charger;"
            "Webcam; Microphone; Router; Smartwatch; Tablet; Soundbar; Projector; USB-C Hub;"
            "Portable SSD; Dash Camera"
        ),
        _words(
            "active noise cancelling; a 30-hour battery; fast USB-C charging;"
            "low-latency Bluetooth 5.3; a braided cable; multipoint pairing;"
            "a companion app with an equalizer; 4K resolution"
        ),
    ),
    "books": (
        "Books",
        _words(
            "Cookbook; Novel; Field Guide; Atlas; Biography; Travel Guide; Poetry Collection;"
            "Programming Handbook; History of Rome; Gardening Manual; Picture Book; Notebook"
        ),
        _words(
            "a sewn binding; full-colour photographs; an illustrated index; a ribbon bookmark;"
            "acid-free paper; a foreword by the author; maps of every region; worked examples"
        ),
    ),
    "home-kitchen": (
        "Home & Kitchen",
        _words(
            "Chef's Knife; Frying Pan; Dutch Oven; Coffee Grinder; Espresso Machine; Kettle;"
            "Cutting Board; Mixing Bowl Set; Blender; Toaster; Saucepan; Water Bottle;"
            "Food Storage Containers; Tea Towels; Table Lamp; Throw Blanket; Pillow; Bath Towel"
        ),
        _words(
            "an ergonomic handle; a non-stick ceramic coating; dishwasher-safe parts; even heating;"
            "a lifetime warranty; a soft-close lid; a brushed finish; an insulated double wall"
        ),
    ),
    "sports-outdoors": (
        "Sports & Outdoors",
        _words(
            "Running Shoes; Yoga Mat; Hiking Backpack; Tent; Sleeping Bag; Water Bottle;"
            "Cycling Helmet; Dumbbell Set; Resistance Bands; Trekking Poles; Headlamp;"
            "Camping Stove; Climbing Harness; Tennis Racket; Football; Swim Goggles"
        ),
        _words(
            "a waterproof shell; reflective details; a breathable mesh; a non-slip grip;"
            "an adjustable fit; a lightweight frame; taped seams; a carry bag"
        ),
    ),
    "clothing": (
        "Clothing",
        _words(
            "T-Shirt; Hoodie; Rain Jacket; Jeans; Chinos; Sweater; Down Jacket; Socks; Beanie;"
            "Scarf; Polo Shirt; Leggings; Shorts; Flannel Shirt; Fleece Vest"
        ),
        _words(
            "organic cotton; a relaxed fit; flatlock seams; a water-repellent finish;"
            "a brushed inside; reinforced knees; a two-way zip; recycled polyester"
        ),
    ),
    "toys-games": (
        "Toys & Games",
        _words(
            "Board Game; Jigsaw Puzzle; Building Blocks; Card Game; Plush Bear; Train Set; Kite;"
            "Science Kit; Wooden Blocks; Racing Car; Dollhouse; Chess Set"
        ),
        _words(
            "rounded edges; non-toxic paints; a storage box; rules for two to six players;"
            "1000 pieces; replacement parts; a step-by-step booklet; batteries included"
        ),
    ),
    "beauty": (
        "Beauty & Personal Care",
        _words(
            "Face Cream; Shampoo; Conditioner; Body Lotion; Lip Balm; Sunscreen; Hair Dryer;"
            "Electric Toothbrush; Beard Trimmer; Hand Soap; Face Serum; Bath Salts"
        ),
        _words(
            "hyaluronic acid; no added fragrance; SPF 50 protection; a travel pouch; vitamin E;"
            "a refillable bottle; three speed settings; dermatologist testing"
        ),
    ),
    "garden": (
        "Garden & Patio",
        _words(
            "Garden Hose; Pruning Shears; Watering Can; Raised Bed; Lawn Mower; Leaf Blower;"
            "Bird Feeder; Planter; Garden Gloves; Compost Bin; Patio Umbrella; Solar Lights"
        ),
        _words(
            "UV-stable plastic; a rust-proof finish; a quick-connect fitting; a foldable frame;"
            "a drainage hole; a weatherproof cover; an ergonomic grip; a two-year warranty"
        ),
    ),
    "office": (
        "Office Supplies",
        _words(
            "Desk Organizer; Fountain Pen; Gel Pens; Stapler; Desk Lamp; Office Chair;"
            "Standing Desk; Whiteboard; Paper Shredder; File Cabinet; Monitor Arm; Planner"
        ),
        _words(
            "a weighted base; smooth ink flow; a height adjustment; lumbar support;"
            "a magnetic surface; a cable tray; a dated layout; a quiet motor"
        ),
    ),
    "pet-supplies": (
        "Pet Supplies",
        _words(
            "Dog Bed; Cat Tree; Dog Leash; Pet Bowl; Cat Litter Box; Chew Toy; Pet Carrier;"
            "Aquarium Filter; Bird Cage; Dog Harness; Scratching Post; Pet Shampoo"
        ),
        _words(
            "a washable cover; a non-slip base; reflective stitching; a quick-release buckle;"
            "chew-resistant material; a padded handle; an odour filter; a gentle formula"
        ),
    ),
}

BRANDS = _words(
    "Acme; Northwind; Contoso; Fabrikam; Globex; Initech; Umbrella; Stark; Wayne; Aperture; Hooli;"
    "Vandelay; Soylent; Tyrell; Cyberdyne; Wonka; Gringotts; Monarch; Oceanic; Pied Piper;"
    "Massive Dynamic; Blue Sun; Nakatomi; Zorg; Duff; Kepler; Lumen; Arbor; Halcyon; Tidewater;"
    "Granite; Juniper; Summit; Cobalt; Meridian"
)
ADJECTIVES = _words(
    "Wireless; Compact; Premium; Ultralight; Ergonomic; Waterproof; Classic; Deluxe; Portable;"
    "Smart; Vintage; Professional; Eco; Rugged; Slim; Heavy-Duty; Foldable; Organic; Modern;"
    "Minimalist; Insulated; Adjustable; Rechargeable; Handmade"
)
MATERIALS = _words(
    "stainless steel; bamboo; recycled aluminium; oak; merino wool; silicone; cast iron; canvas;"
    "ceramic; carbon fibre; leather; glass; cotton; nylon; walnut; copper"
)
COLOURS = _words("Black; White; Navy; Forest Green; Slate Grey; Red; Sand; Teal; Mustard; Charcoal")
USES = _words(
    "everyday use; travel; the office; weekend trips; small kitchens; long runs;"
    "beginners and experts alike; gifts; outdoor adventures; family evenings; the commute"
)
CLOSERS = [
    "Backed by a two-year warranty.",
    "Ships in plastic-free packaging.",
    "Designed in our studio and tested by hand.",
    "Free returns within 30 days.",
    "Spare parts available for ten years.",
    "Rated four and a half stars by our customers.",
]


@dataclass
class SeededCatalog:
    """What the scenarios need to know about the seeded catalog."""

    category_slugs: list[str]
    product_ids: list[str]
    checkout_product_ids: list[str]
    search_terms: list[str]
    count: int
    seconds: float


@dataclass
class Shopper:
    email: str
    password: str
    access_token: str
    account_id: str


@dataclass
class _Generator:
    rng: random.Random = field(default_factory=lambda: random.Random(RANDOM_SEED))

    def product(self, slug: str) -> tuple[str, str]:
        _, nouns, features = CATEGORIES[slug]
        rng = self.rng
        noun = rng.choice(nouns)
        brand = rng.choice(BRANDS)
        adjective = rng.choice(ADJECTIVES)
        name = f"{brand} {adjective} {noun}"
        extra = rng.random()
        if extra < 0.35:
            name += f", {rng.choice(COLOURS)}"
        elif extra < 0.6:
            name += f" {rng.choice('ABCDEFGHKMRSTXZ')}{rng.randint(10, 990)}"
        first, second = rng.sample(features, 2)
        material = rng.choice(MATERIALS)
        description = (
            f"{adjective} {noun.lower()} from {brand}, made of {material} with {first} and {second}. "
            f"Made for {rng.choice(USES)}; pairs well with our {rng.choice(nouns).lower()}. "
            f"{rng.choice(CLOSERS)}"
        )
        return name, description


def search_terms(count: int = 400, seed: int = RANDOM_SEED) -> list[str]:
    """What shoppers type: whole words, singular stems, prefixes, typos, two-word phrases."""
    rng = random.Random(seed + 1)
    nouns = sorted({noun for _, words, _ in CATEGORIES.values() for noun in words})
    terms: list[str] = []
    while len(terms) < count:
        noun = rng.choice(nouns).lower()
        word = max(noun.replace("-", " ").split(), key=len)
        kind = rng.random()
        if kind < 0.3:
            terms.append(noun)  # "hiking backpack"
        elif kind < 0.45:
            terms.append(word[:-1] if word.endswith("s") and len(word) > 4 else word)  # stem
        elif kind < 0.6:
            terms.append(word[: max(4, len(word) - rng.randint(2, 4))])  # prefix, "headph"
        elif kind < 0.75:
            terms.append(_typo(word, rng))  # "hedphones"
        elif kind < 0.9:
            terms.append(f"{rng.choice(ADJECTIVES).lower()} {word}")  # "wireless headphones"
        else:
            terms.append(f"{rng.choice(MATERIALS).split()[-1]} {word}")  # "steel knife"
    return terms


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rng.randint(1, len(word) - 2)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1 :]  # a dropped letter
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # two letters swapped


def plain_dsn(url: str) -> str:
    """An asyncpg DSN from a SQLAlchemy URL (`postgresql+asyncpg://...`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def seed_catalog(database_url: str, count: int) -> SeededCatalog:
    """Load `count` products (and the categories) into the catalog's database; returns what was made."""
    began = time.monotonic()
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        category_ids = await _load_categories(conn)
        columns = {table: await _columns(conn, table) for table in ("products", "product_variants")}
        rows, product_ids, checkout_ids = _product_rows(count, category_ids, columns)
        async with conn.transaction():
            indexes = [index for table in columns for index in await _secondary_indexes(conn, table)]
            for name, _ in indexes:
                await conn.execute(f'DROP INDEX "{name}"')
            for table, table_columns in columns.items():  # products first: variants refer to them
                await conn.copy_records_to_table(table, records=rows[table], columns=list(table_columns))
            for _, definition in indexes:
                await conn.execute(definition)
        for table in ("categories", *columns):
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()
    return SeededCatalog(
        category_slugs=list(category_ids),
        product_ids=product_ids,
        checkout_product_ids=checkout_ids,
        search_terms=search_terms(),
        count=count,
        seconds=time.monotonic() - began,
    )


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, bool]:
    """Writable columns of `table`: name -> whether a value is required (NOT NULL, no default)."""
    rows = await conn.fetch(
        """
        SELECT column_name, is_nullable = 'NO' AND column_default IS NULL AS required
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'
          AND is_identity = 'NO'
        ORDER BY ordinal_position
        """,
        table,
    )
    return {row["column_name"]: row["required"] for row in rows}


async def _secondary_indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of `table` that back no constraint."""
    rows = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = $1
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """,
        table,
    )
    return [(row["name"], row["definition"]) for row in rows]


async def _load_categories(conn: asyncpg.Connection) -> dict[str, uuid.UUID]:
    columns = await _columns(conn, "categories")
    known = {"id", "slug", "name", "created_at"}
    unknown = [c for c, required in columns.items() if required and c not in known]
    if unknown:
        raise RuntimeError(f"categories has required columns the bench does not fill: {unknown}")
    ids: dict[str, uuid.UUID] = {}
    for slug, (name, _, _) in CATEGORIES.items():
        existing = await conn.fetchval("SELECT id FROM categories WHERE slug = $1", slug)
        if existing is None:
            existing = uuid.uuid4()
            await conn.execute(
                "INSERT INTO categories (id, slug, name) VALUES ($1, $2, $3)", existing, slug, name
            )
        ids[slug] = existing
    return ids


def _product_rows(
    count: int, category_ids: dict[str, uuid.UUID], columns: dict[str, dict[str, bool]]
) -> tuple[dict[str, list[tuple[Any, ...]]], list[str], list[str]]:
    """The rows of `products` and `product_variants` (by table), every product's id, and the ids
    of the products checkout orders."""
    generator = _Generator()
    rng = generator.rng
    slugs = list(category_ids)
    now = datetime.now(UTC)
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in columns}
    product_ids: list[str] = []
    checkout_ids: list[str] = []
    for index in range(count):
        slug = slugs[index % len(slugs)]
        name, description = generator.product(slug)
        product_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = now - timedelta(seconds=rng.randint(60, 365 * 24 * 3600))
        sku = f"BENCH-{index:07d}"
        price_minor = (
            rng.choice([499, 999, 1299, 1999, 2499, 3999, 4999, 7999, 12900, 24900])
            + rng.randint(0, 99) * 100
        )
        groups = _option_groups(rng) if index % VARIANT_EVERY == VARIANT_EVERY - 1 else []
        in_pool = not groups and len(checkout_ids) < CHECKOUT_POOL
        variants = _variants(rng, product_id, sku, groups, price_minor, created, in_pool=in_pool)
        product = {
            "id": product_id,
            "sku": sku,
            "name": name,
            "description": description,
            "price_minor": price_minor,
            "currency": CURRENCY,
            "category_id": category_ids[slug],
            "low_stock_threshold": 5,
            "option_groups": orjson.dumps(groups).decode(),
            # What the catalog's search vector learns of the variants: SKUs, then option values.
            "variant_terms": " ".join(
                [
                    *(v["sku"] for v in variants),
                    *dict.fromkeys(o["value"] for v in variants for o in v["chosen"]),
                ]
            ),
            "featured": rng.random() < 0.03,
            "archived_at": None,
            "created_at": created,
            "updated_at": created,
        }
        rows["products"].append(_row("products", product, columns["products"]))
        rows["product_variants"].extend(
            _row("product_variants", v, columns["product_variants"]) for v in variants
        )
        product_ids.append(str(product_id))
        if in_pool:
            checkout_ids.append(str(product_id))
    return rows, product_ids, checkout_ids


def _option_groups(rng: random.Random) -> list[dict[str, Any]]:
    """Three consecutive sizes and two colours: six variants."""
    first = rng.randrange(len(SIZES) - 2)
    return [
        {"name": "Size", "values": list(SIZES[first : first + 3])},
        {"name": "Colour", "values": rng.sample(COLOURS, 2)},
    ]


def _variants(
    rng: random.Random,
    product_id: uuid.UUID,
    sku: str,
    groups: list[dict[str, Any]],
    price_minor: int,
    created: datetime,
    *,
    in_pool: bool,
) -> list[dict[str, Any]]:
    """A variant per combination of the groups' values (as the catalog names and keys them), or
    the one "Default" variant with the product's SKU."""
    combinations: list[list[dict[str, str]]] = [[]]
    for group in groups:
        combinations = [
            [*c, {"group": group["name"], "value": v}] for c in combinations for v in group["values"]
        ]
    variants = []
    for position, options in enumerate(combinations):
        suffix = "-".join(o["value"].replace(" ", "").upper() for o in options)
        variants.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "product_id": product_id,
                "sku": f"{sku}-{suffix}" if options else sku,
                "name": " / ".join(o["value"] for o in options) or "Default",
                "options": orjson.dumps(options).decode(),
                "chosen": options,
                "options_key": "|".join(f"{o['group'].casefold()}={o['value'].casefold()}" for o in options),
                # The bigger sizes cost a little more; the others follow the product's price.
                "price_minor": price_minor + 500 if options and options[0]["value"] in ("L", "XL") else None,
                "stock": CHECKOUT_STOCK if in_pool else (0 if rng.random() < 0.05 else rng.randint(1, 500)),
                "low_stock_threshold": None,
                "position": position,
                "archived_at": None,
                "created_at": created,
                "updated_at": created,
            }
        )
    return variants


def _row(table: str, values: dict[str, Any], columns: dict[str, bool]) -> tuple[Any, ...]:
    unknown = [c for c, required in columns.items() if required and c not in values]
    if unknown:
        raise RuntimeError(f"{table} has required columns the bench does not fill: {unknown}")
    return tuple(values.get(column) for column in columns)


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken account { id } }
}
"""


async def seed_shop_terms(database_url: str) -> str:
    """The demo shop's shipping methods, tax rates and coupon, loaded by the order service's own
    code as `ecommerce seed` loads them (a checkout needs a shipping method); the method to use."""
    order = importlib.import_module("order.__main__")
    await order.seed(currency=CURRENCY, database_url=database_url)
    return SHIPPING_METHOD


async def register_shoppers(graphql_url: str, count: int, *, concurrency: int = 4) -> list[Shopper]:
    """Register `count` shoppers through GraphQL (the real bcrypt path); returns them with tokens."""
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(concurrency)

    async def register(client: httpx.AsyncClient, index: int) -> Shopper:
        email = f"shopper-{run}-{index:05d}@example.com"
        password = f"bench-password-{index:05d}"
        variables = {"input": {"name": f"Shopper {index}", "email": email, "password": password}}
        async with gate:
            response = await client.post(graphql_url, json={"query": REGISTER, "variables": variables})
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"registering {email} failed: {body['errors']}")
        payload = body["data"]["register"]
        return Shopper(email, password, payload["accessToken"], payload["account"]["id"])

    async with httpx.AsyncClient(timeout=120) as client:
        return list(await asyncio.gather(*(register(client, i) for i in range(count))))
