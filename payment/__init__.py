"""The payment service: one payment per order, charged through a guarded provider adapter."""
