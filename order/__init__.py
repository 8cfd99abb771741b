"""The order service (see DESIGN.md)."""
