"""The `ecommerce` command: run the platform, one service, migrations, seed data, admins."""

import argparse

ALL_SERVICES = ("account", "catalog", "order", "payment", "notification")

MAX_REPLICAS = 8


def parse_replicas(text: str) -> int:
    """A `--replicas` option: a whole number from 1 to MAX_REPLICAS."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_REPLICAS}")
    return int(text)
