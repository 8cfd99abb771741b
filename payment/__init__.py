"""The payment service (see DESIGN.md)."""
