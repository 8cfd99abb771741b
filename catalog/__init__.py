"""The catalog service: products, categories, search and stock (docs/architecture.md)."""
