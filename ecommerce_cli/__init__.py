"""The `ecommerce` command: run the platform, one service, migrations, seed data, admins."""
