"""The catalog service (see DESIGN.md)."""
