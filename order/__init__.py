"""The order service: orders and the saga that carries them through stock reservation and payment."""
