"""What one benchmark run measures: the scenarios, their levels and sizes, from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from ecommerce_cli import parse_replicas

# The last two run browse and search again against the gateway with its response cache off
# (GATEWAY_RESPONSE_CACHE=false): what the cache is worth, and what a miss costs.
UNCACHED = "_uncached"
SCENARIOS = ("browse", "search", "login", "me", "checkout", "mix", "browse" + UNCACHED, "search" + UNCACHED)
# A checkout goes through a cart (createCart and setCartEmail only for a guest, when virtual users
# outnumber the shoppers); CHECKOUT_FLOW=createOrder runs the one-request checkout of earlier runs.
CHECKOUT_OPS = (
    "myCart",
    "createCart",
    "setCartEmail",
    "addToCart",
    "setCartShippingAddress",
    "setCartShippingMethod",
    "checkout",
    "createOrder",
)
# The operations each scenario's summary breaks latency down by.
SCENARIO_OPS = {
    "browse": ("products", "product"),
    "search": ("searchProducts",),
    "browse" + UNCACHED: ("products", "product"),
    "search" + UNCACHED: ("searchProducts",),
    "login": ("login",),
    "me": ("me",),
    "checkout": CHECKOUT_OPS,
    "mix": ("products", "product", "searchProducts", "login", "me", *CHECKOUT_OPS),
}
# Per-caller cost budgets (the gateway's leaky bucket): every k6 virtual user shares one client
# address and the shoppers are few, so the budget would be what is measured. The bench raises it
# by setting, and the report says so.
BUDGET_SETTINGS = {
    "GATEWAY_RATE_LIMIT_CAPACITY": "100000000",
    "GATEWAY_RATE_LIMIT_RESTORE_RATE": "10000000",
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Config:
    smoke: bool = False
    products: int = 100_000
    shoppers: int = 64
    duration: float = 20.0
    warmup: float = 5.0
    levels: list[int] = field(default_factory=lambda: [8, 32])
    # bcrypt at cost 12 takes a core for a quarter of a second: more logins in flight only queue.
    login_levels: list[int] = field(default_factory=lambda: [4, 16])
    baseline_seconds: float = 10.0
    broker_events: int = 20_000
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    profile: list[str] = field(default_factory=list)
    results_dir: Path = RESULTS_DIR
    keep_data: bool = False
    update_docs: bool = False
    bcrypt_rounds: int = 12
    # Off only to iterate on one scenario quickly (profiling): the report then has no ratios.
    baselines: bool = True
    # Processes of each service (`--replicas`); calls are spread over them.
    replicas: int = 1

    @classmethod
    def smoke_mode(cls) -> Config:
        return cls(
            smoke=True,
            products=1_000,
            shoppers=4,
            duration=2.0,
            warmup=1.0,
            levels=[2],
            login_levels=[2],
            baseline_seconds=1.0,
            broker_events=500,
            bcrypt_rounds=4,
            # One run with the cache off proves it works; the second would only take time.
            scenarios=[s for s in SCENARIOS if s != "search" + UNCACHED],
        )

    @staticmethod
    def script_of(scenario: str) -> str:
        """The k6 script a scenario runs (`browse_uncached` runs browse.js)."""
        return scenario.removesuffix(UNCACHED)

    def levels_for(self, scenario: str) -> list[int]:
        return self.login_levels if scenario == "login" else self.levels


def _levels(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive integers separated by commas, e.g. 8,32")
    return values


def _scenarios(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    return names


def parse_args(argv: list[str] | None = None, *, description: str = "") -> Config:
    """The run's configuration from its command line (`python -m bench.run --help`)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds per scenario, 1,000 products")
    parser.add_argument("--scenarios", type=_scenarios, help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, help="seconds of each measured run (default 20)")
    parser.add_argument("--warmup", type=float, help="seconds of the discarded warm-up run (default 5)")
    parser.add_argument("--levels", type=_levels, help="virtual users, e.g. 8,32 (login: --login-levels)")
    parser.add_argument("--login-levels", type=_levels, help="virtual users of the login scenario (4,16)")
    parser.add_argument("--products", type=int, help="products to seed (default 100,000)")
    parser.add_argument("--shoppers", type=int, help="shoppers to register (default 64)")
    parser.add_argument(
        "--profile",
        metavar="SCENARIO",
        action="append",
        default=[],
        help="py-spy flame graphs of the busiest processes during this scenario's top level "
        "(repeatable; 'all' for every scenario); alone, it runs only the profiled scenarios",
    )
    parser.add_argument(
        "--replicas",
        type=parse_replicas,
        default=1,
        metavar="N",
        help="processes of each service (1 to 8; default 1); calls are spread over all of them",
    )
    parser.add_argument("--results-dir", type=Path, help="where <date>/ is written (default bench/results)")
    parser.add_argument("--keep-data", action="store_true", help="keep the data directory and the logs")
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the baselines and the broker run (quicker iterations; the report has no ratios then)",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="put this run's table into docs/benchmarks.md (not with --smoke)",
    )
    args = parser.parse_args(argv)
    if args.update_docs and args.smoke:
        parser.error("--update-docs: smoke figures mean nothing; run the full benchmark")
    config = Config.smoke_mode() if args.smoke else Config()
    profile = (
        list(SCENARIOS)
        if "all" in args.profile
        else _scenarios(",".join(args.profile))
        if args.profile
        else []
    )
    config.profile = profile
    if args.scenarios:
        config.scenarios = args.scenarios
    elif profile:
        config.scenarios = [s for s in SCENARIOS if s in profile]
    for name in ("duration", "warmup", "levels", "login_levels", "products", "shoppers", "results_dir"):
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)
    config.keep_data = args.keep_data
    config.replicas = args.replicas
    config.baselines = not args.no_baselines
    config.update_docs = args.update_docs
    return config
