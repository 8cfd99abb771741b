"""The notification service (see DESIGN.md)."""
