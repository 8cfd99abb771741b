"""The notification service: e-mails and webhooks from the other services' events (docs/architecture.md)."""
