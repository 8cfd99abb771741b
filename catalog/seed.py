"""The demo catalog `ecommerce seed` loads (and `ecommerce dev` on first start): realistic products
in a handful of categories, priced in the catalog's currency. Loading is idempotent by slug and SKU."""

from __future__ import annotations

CATEGORIES: list[dict[str, str]] = [
    {"slug": "electronics", "name": "Electronics"},
    {"slug": "books", "name": "Books"},
    {"slug": "home-kitchen", "name": "Home & Kitchen"},
    {"slug": "sports-outdoors", "name": "Sports & Outdoors"},
    {"slug": "clothing", "name": "Clothing"},
    {"slug": "toys-games", "name": "Toys & Games"},
    {"slug": "beauty", "name": "Beauty & Personal Care"},
    {"slug": "garden", "name": "Garden & Patio"},
]

PRODUCTS: list[dict[str, object]] = [
    # -- electronics
    {
        "sku": "ELEC-1001",
        "category": "electronics",
        "name": "Wireless Noise-Cancelling Headphones",
        "description": "Over-ear Bluetooth headphones with adaptive noise cancelling, 30-hour battery "
        "life, fast charging and a foldable design with a hard travel case.",
        "price": "249.00",
        "stock": 42,
        "featured": True,
    },
    {
        "sku": "ELEC-1002",
        "category": "electronics",
        "name": "True Wireless Earbuds",
        "description": "Compact in-ear earbuds with a pocket charging case, IPX4 sweat resistance and "
        "touch controls. Up to 24 hours of listening with the case.",
        "price": "89.99",
        "stock": 120,
    },
    {
        "sku": "ELEC-1003",
        "category": "electronics",
        "name": "Studio Monitor Headphones",
        "description": "Closed-back wired headphones tuned flat for mixing and mastering, with a "
        "detachable coiled cable and replaceable velour ear pads.",
        "price": "149.00",
        "stock": 18,
    },
    {
        "sku": "ELEC-1004",
        "category": "electronics",
        "name": "Portable Bluetooth Speaker",
        "description": "Rugged waterproof speaker with 360-degree sound, 12-hour battery and a "
        "built-in strap. Pairs two units for stereo.",
        "price": "59.95",
        "stock": 75,
    },
    {
        "sku": "ELEC-1005",
        "category": "electronics",
        "name": "27-inch 4K USB-C Monitor",
        "description": "IPS panel with 99% sRGB coverage, 65 W USB-C power delivery, a height-adjustable "
        "stand and a built-in KVM switch.",
        "price": "399.00",
        "stock": 12,
        "featured": True,
    },
    {
        "sku": "ELEC-1006",
        "category": "electronics",
        "name": "Mechanical Keyboard, Tenkeyless",
        "description": "Hot-swappable switches, PBT keycaps, per-key white backlight and a detachable "
        "USB-C cable. Compact tenkeyless layout.",
        "price": "119.00",
        "stock": 34,
    },
    {
        "sku": "ELEC-1007",
        "category": "electronics",
        "name": "Ergonomic Wireless Mouse",
        "description": "Sculpted right-handed mouse with a quiet scroll wheel, three programmable buttons "
        "and a rechargeable battery that lasts ten weeks.",
        "price": "49.99",
        "stock": 88,
    },
    {
        "sku": "ELEC-1008",
        "category": "electronics",
        "name": "10,000 mAh Power Bank",
        "description": "Slim power bank with USB-C in and out, 20 W fast charging and enough capacity "
        "for two full phone charges.",
        "price": "29.99",
        "stock": 200,
    },
    {
        "sku": "ELEC-1009",
        "category": "electronics",
        "name": "Smart Fitness Watch",
        "description": "Heart rate, sleep and GPS tracking with a bright always-on display, contactless "
        "payments and seven-day battery life.",
        "price": "199.00",
        "stock": 3,
    },
    # -- books
    {
        "sku": "BOOK-2001",
        "category": "books",
        "name": "Designing Data-Intensive Applications",
        "description": "The big ideas behind reliable, scalable and maintainable systems: replication, "
        "partitioning, transactions and stream processing. Paperback.",
        "price": "45.99",
        "stock": 25,
        "featured": True,
    },
    {
        "sku": "BOOK-2002",
        "category": "books",
        "name": "Architecture Patterns with Python",
        "description": "Test-driven development, domain-driven design and event-driven microservices, "
        "worked through in one growing Python application.",
        "price": "39.99",
        "stock": 30,
    },
    {
        "sku": "BOOK-2003",
        "category": "books",
        "name": "The Pragmatic Programmer, 20th Anniversary Edition",
        "description": "Timeless advice on writing flexible, adaptable code and on a career in software. "
        "Hardcover.",
        "price": "42.50",
        "stock": 16,
    },
    {
        "sku": "BOOK-2004",
        "category": "books",
        "name": "The Salt Fat Acid Heat Cookbook",
        "description": "Master the four elements of good cooking, with illustrated lessons and more than "
        "one hundred recipes.",
        "price": "32.00",
        "stock": 22,
    },
    {
        "sku": "BOOK-2005",
        "category": "books",
        "name": "A Field Guide to North American Birds",
        "description": "Over 800 species with range maps, paintings and identification notes for every "
        "season. Flexible cover for the trail.",
        "price": "27.95",
        "stock": 14,
    },
    {
        "sku": "BOOK-2006",
        "category": "books",
        "name": "Dune (Paperback)",
        "description": "Frank Herbert's science fiction classic of politics, religion and ecology on the "
        "desert planet Arrakis.",
        "price": "11.99",
        "stock": 60,
    },
    {
        "sku": "BOOK-2007",
        "category": "books",
        "name": "Children's Illustrated Atlas",
        "description": "Maps, flags and facts about every continent, with fold-out pages and stickers. "
        "Ages 6 and up.",
        "price": "19.99",
        "stock": 40,
    },
    {
        "sku": "BOOK-2008",
        "category": "books",
        "name": "Mindful Running: A Training Journal",
        "description": "A guided journal for runners: weekly plans, recovery notes and space to record "
        "every run of the year.",
        "price": "14.95",
        "stock": 2,
    },
    # -- home & kitchen
    {
        "sku": "HOME-3001",
        "category": "home-kitchen",
        "name": "Electric Gooseneck Kettle",
        "description": "Variable temperature kettle for pour-over coffee and tea, with a hold function "
        "and a precise stainless steel spout.",
        "price": "79.00",
        "stock": 28,
        "featured": True,
    },
    {
        "sku": "HOME-3002",
        "category": "home-kitchen",
        "name": "Cast Iron Skillet, 12-inch",
        "description": "Pre-seasoned cast iron pan for searing, baking and frying on any stovetop, in the "
        "oven or over a campfire.",
        "price": "39.95",
        "stock": 50,
    },
    {
        "sku": "HOME-3003",
        "category": "home-kitchen",
        "name": "Burr Coffee Grinder",
        "description": "Conical burr grinder with 40 grind settings from espresso to French press and a "
        "low-static grounds container.",
        "price": "129.00",
        "stock": 19,
    },
    {
        "sku": "HOME-3004",
        "category": "home-kitchen",
        "name": "Chef's Knife, 8-inch",
        "description": "Forged German steel blade with a full tang and an ergonomic handle. Holds an edge "
        "through daily chopping and slicing.",
        "price": "89.00",
        "stock": 33,
    },
    {
        "sku": "HOME-3005",
        "category": "home-kitchen",
        "name": "Linen Duvet Cover Set",
        "description": "Stonewashed European flax linen duvet cover with two pillowcases; breathable, "
        "soft and better with every wash. Queen size.",
        "price": "159.00",
        "stock": 11,
    },
    {
        "sku": "HOME-3006",
        "category": "home-kitchen",
        "name": "Glass Food Storage Containers, 10-piece",
        "description": "Oven-safe borosilicate glass containers with leak-proof locking lids for meal prep "
        "and leftovers.",
        "price": "34.99",
        "stock": 64,
    },
    {
        "sku": "HOME-3007",
        "category": "home-kitchen",
        "name": "Robot Vacuum Cleaner",
        "description": "Self-charging robot vacuum with lidar mapping, no-go zones, and strong suction for "
        "carpets and hard floors.",
        "price": "329.00",
        "stock": 7,
    },
    {
        "sku": "HOME-3008",
        "category": "home-kitchen",
        "name": "Dutch Oven, 5.5-quart",
        "description": "Enamelled cast iron pot for braising, stews and bread; even heat and a tight-fitting "
        "lid that locks in moisture.",
        "price": "99.95",
        "stock": 21,
    },
    {
        "sku": "HOME-3009",
        "category": "home-kitchen",
        "name": "Scented Soy Candle, Cedar & Sage",
        "description": "Hand-poured soy wax candle with a cotton wick and a 50-hour burn time in a reusable "
        "amber glass jar.",
        "price": "18.00",
        "stock": 90,
    },
    # -- sports & outdoors
    {
        "sku": "SPRT-4001",
        "category": "sports-outdoors",
        "name": "Trail Running Shoes",
        "description": "Grippy lugged outsole, rock plate and a breathable mesh upper for fast runs on "
        "technical mountain trails.",
        "price": "134.99",
        "stock": 26,
        "featured": True,
    },
    {
        "sku": "SPRT-4002",
        "category": "sports-outdoors",
        "name": "Ultralight Two-Person Tent",
        "description": "Freestanding backpacking tent weighing 1.3 kg, with two doors, two vestibules and "
        "a waterproof rainfly.",
        "price": "379.00",
        "stock": 9,
    },
    {
        "sku": "SPRT-4003",
        "category": "sports-outdoors",
        "name": "Insulated Water Bottle, 32 oz",
        "description": "Double-wall vacuum insulated stainless steel bottle that keeps drinks cold for 24 "
        "hours and hot for 12.",
        "price": "34.95",
        "stock": 150,
    },
    {
        "sku": "SPRT-4004",
        "category": "sports-outdoors",
        "name": "Yoga Mat, 6 mm",
        "description": "Non-slip natural rubber yoga mat with alignment lines and a carrying strap. "
        "Cushioned for joints.",
        "price": "68.00",
        "stock": 45,
    },
    {
        "sku": "SPRT-4005",
        "category": "sports-outdoors",
        "name": "Adjustable Dumbbells, Pair",
        "description": "Dial-adjustable dumbbells from 2.5 to 24 kg each, replacing fifteen pairs of "
        "weights in a compact home gym.",
        "price": "429.00",
        "stock": 5,
    },
    {
        "sku": "SPRT-4006",
        "category": "sports-outdoors",
        "name": "Down Sleeping Bag, -5 °C",
        "description": "Mummy sleeping bag with 650-fill responsibly sourced down, a draft collar and a "
        "compression sack.",
        "price": "259.00",
        "stock": 13,
    },
    {
        "sku": "SPRT-4007",
        "category": "sports-outdoors",
        "name": "Cycling Helmet with MIPS",
        "description": "Lightweight road and gravel helmet with MIPS rotational protection, 18 vents and "
        "a rear LED light.",
        "price": "119.95",
        "stock": 24,
    },
    {
        "sku": "SPRT-4008",
        "category": "sports-outdoors",
        "name": "Trekking Poles, Carbon",
        "description": "Collapsible carbon fibre trekking poles with cork grips and quick-lock adjustment "
        "for hiking and snowshoeing.",
        "price": "99.00",
        "stock": 31,
    },
    # -- clothing
    {
        "sku": "CLTH-5001",
        "category": "clothing",
        "name": "Merino Wool Base Layer Crew",
        "description": "Lightweight 200 gsm merino wool top that regulates temperature and resists odour; "
        "for hiking, skiing and travel.",
        "price": "85.00",
        "stock": 48,
    },
    {
        "sku": "CLTH-5002",
        "category": "clothing",
        "name": "Waterproof Rain Jacket",
        "description": "Three-layer breathable shell with taped seams, pit zips and a helmet-compatible "
        "hood. Packs into its own pocket.",
        "price": "189.00",
        "stock": 17,
        "featured": True,
    },
    {
        "sku": "CLTH-5003",
        "category": "clothing",
        "name": "Organic Cotton T-Shirt",
        "description": "Classic crew neck tee in soft organic cotton jersey, pre-shrunk and garment dyed.",
        "price": "24.00",
        "stock": 180,
    },
    {
        "sku": "CLTH-5004",
        "category": "clothing",
        "name": "Slim Fit Selvedge Jeans",
        "description": "Raw 14 oz Japanese selvedge denim with a tapered leg; fades beautifully with wear.",
        "price": "148.00",
        "stock": 22,
    },
    {
        "sku": "CLTH-5005",
        "category": "clothing",
        "name": "Quilted Puffer Vest",
        "description": "Warm, light vest with recycled synthetic insulation and zippered hand pockets.",
        "price": "79.50",
        "stock": 36,
    },
    {
        "sku": "CLTH-5006",
        "category": "clothing",
        "name": "Wool Blend Beanie",
        "description": "Rib-knit beanie in a soft wool and cashmere blend with a fold-over cuff.",
        "price": "29.00",
        "stock": 95,
    },
    {
        "sku": "CLTH-5007",
        "category": "clothing",
        "name": "Leather Chelsea Boots",
        "description": "Full-grain leather boots with elastic side panels, pull tabs and a Goodyear-welted "
        "rubber sole.",
        "price": "210.00",
        "stock": 8,
    },
    {
        "sku": "CLTH-5008",
        "category": "clothing",
        "name": "Running Shorts with Liner",
        "description": "Quick-dry 5-inch running shorts with a built-in liner, a zip pocket and reflective "
        "details.",
        "price": "45.00",
        "stock": 70,
    },
    # -- toys & games
    {
        "sku": "TOYS-6001",
        "category": "toys-games",
        "name": "Wooden Building Blocks, 100 pieces",
        "description": "Smooth beech wood blocks in natural and bright colours, with a storage bag. "
        "Ages 2 and up.",
        "price": "39.00",
        "stock": 55,
    },
    {
        "sku": "TOYS-6002",
        "category": "toys-games",
        "name": "Strategy Board Game: Settlers of the Isles",
        "description": "Trade, build and settle across a modular island board. 3 to 4 players, about 90 "
        "minutes a game.",
        "price": "49.99",
        "stock": 27,
        "featured": True,
    },
    {
        "sku": "TOYS-6003",
        "category": "toys-games",
        "name": "1000-Piece Jigsaw Puzzle, Alpine Lake",
        "description": "A photographic jigsaw puzzle of a mountain lake at dawn, with a poster for "
        "reference.",
        "price": "22.99",
        "stock": 38,
    },
    {
        "sku": "TOYS-6004",
        "category": "toys-games",
        "name": "Remote Control Off-Road Car",
        "description": "1:16 scale four-wheel-drive RC truck with oil-filled shocks, a rechargeable battery "
        "and 30 km/h top speed.",
        "price": "74.95",
        "stock": 15,
    },
    {
        "sku": "TOYS-6005",
        "category": "toys-games",
        "name": "Plush Teddy Bear",
        "description": "Extra soft, machine-washable teddy bear with embroidered eyes. Safe from birth.",
        "price": "19.50",
        "stock": 110,
    },
    {
        "sku": "TOYS-6006",
        "category": "toys-games",
        "name": "Beginner Chess Set",
        "description": "Weighted plastic pieces, a roll-up vinyl board and an illustrated rules booklet "
        "for new players.",
        "price": "24.99",
        "stock": 44,
    },
    {
        "sku": "TOYS-6007",
        "category": "toys-games",
        "name": "STEM Robotics Kit",
        "description": "Build and program six robots with sensors and motors using a visual coding app. "
        "Ages 8 and up.",
        "price": "129.99",
        "stock": 4,
    },
    {
        "sku": "TOYS-6008",
        "category": "toys-games",
        "name": "Party Card Game: Word Rush",
        "description": "A fast word-guessing card game for 4 to 10 players; rounds take five minutes.",
        "price": "17.99",
        "stock": 66,
    },
    # -- beauty & personal care
    {
        "sku": "BEAU-7001",
        "category": "beauty",
        "name": "Daily Moisturizer with SPF 30",
        "description": "Lightweight face moisturizer with broad-spectrum sunscreen, niacinamide and "
        "hyaluronic acid. Fragrance free.",
        "price": "28.00",
        "stock": 85,
    },
    {
        "sku": "BEAU-7002",
        "category": "beauty",
        "name": "Electric Toothbrush",
        "description": "Sonic toothbrush with a pressure sensor, two-minute timer, three modes and a "
        "travel case; three weeks per charge.",
        "price": "69.99",
        "stock": 40,
        "featured": True,
    },
    {
        "sku": "BEAU-7003",
        "category": "beauty",
        "name": "Vitamin C Serum",
        "description": "Brightening serum with 15% L-ascorbic acid, vitamin E and ferulic acid in an "
        "amber dropper bottle.",
        "price": "36.00",
        "stock": 52,
    },
    {
        "sku": "BEAU-7004",
        "category": "beauty",
        "name": "Ionic Hair Dryer",
        "description": "Fast-drying 1800 W hair dryer with ionic conditioning, three heat settings and a "
        "cool shot button.",
        "price": "89.00",
        "stock": 20,
    },
    {
        "sku": "BEAU-7005",
        "category": "beauty",
        "name": "Natural Shampoo Bar",
        "description": "Plastic-free solid shampoo with coconut and rosemary oils; lasts as long as two "
        "bottles of liquid shampoo.",
        "price": "12.50",
        "stock": 130,
    },
    {
        "sku": "BEAU-7006",
        "category": "beauty",
        "name": "Safety Razor Kit",
        "description": "Chrome double-edge safety razor with a stand and 20 stainless steel blades.",
        "price": "42.00",
        "stock": 6,
    },
    {
        "sku": "BEAU-7007",
        "category": "beauty",
        "name": "Lip Balm Trio",
        "description": "Beeswax lip balms in mint, vanilla and unscented, with shea butter and vitamin E.",
        "price": "9.99",
        "stock": 240,
    },
    {
        "sku": "BEAU-7008",
        "category": "beauty",
        "name": "Eau de Parfum, Citrus Woods",
        "description": "A fresh fragrance of bergamot, grapefruit and cedarwood. 50 ml spray.",
        "price": "95.00",
        "stock": 14,
    },
    # -- garden & patio
    {
        "sku": "GARD-8001",
        "category": "garden",
        "name": "Raised Garden Bed, Cedar",
        "description": "Untreated cedar raised bed, 120 x 60 cm, for vegetables and herbs; assembles "
        "without tools.",
        "price": "139.00",
        "stock": 10,
    },
    {
        "sku": "GARD-8002",
        "category": "garden",
        "name": "Cordless Hedge Trimmer",
        "description": "18 V hedge trimmer with a 50 cm dual-action blade, battery and charger included.",
        "price": "119.00",
        "stock": 12,
    },
    {
        "sku": "GARD-8003",
        "category": "garden",
        "name": "Solar Garden Lights, 8-pack",
        "description": "Warm white stainless steel path lights that charge by day and glow for up to ten "
        "hours at night.",
        "price": "39.99",
        "stock": 58,
        "featured": True,
    },
    {
        "sku": "GARD-8004",
        "category": "garden",
        "name": "Expandable Garden Hose, 30 m",
        "description": "Lightweight hose that expands under pressure, with a ten-pattern spray nozzle and "
        "brass fittings.",
        "price": "44.95",
        "stock": 37,
    },
    {
        "sku": "GARD-8005",
        "category": "garden",
        "name": "Heirloom Vegetable Seed Collection",
        "description": "Twenty varieties of open-pollinated vegetable seeds: tomatoes, beans, squash, "
        "lettuce and more.",
        "price": "24.00",
        "stock": 140,
    },
    {
        "sku": "GARD-8006",
        "category": "garden",
        "name": "Teak Outdoor Bench",
        "description": "Grade-A teak garden bench for two, weather resistant and oiled by hand.",
        "price": "449.00",
        "stock": 3,
    },
    {
        "sku": "GARD-8007",
        "category": "garden",
        "name": "Compost Bin, 300 litres",
        "description": "Recycled plastic compost bin with a hinged lid and a bottom hatch for harvesting "
        "finished compost.",
        "price": "64.99",
        "stock": 19,
    },
    {
        "sku": "GARD-8008",
        "category": "garden",
        "name": "Pruning Shears, Bypass",
        "description": "Hardened steel bypass pruners with a sap groove, a safety lock and cushioned "
        "handles.",
        "price": "29.95",
        "stock": 76,
    },
]
