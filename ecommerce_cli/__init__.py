"""The `ecommerce` command: run the platform, one service, migrations, seed data, admins."""

ALL_SERVICES = ("account", "catalog", "order", "payment", "notification")
