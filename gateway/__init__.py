"""The GraphQL gateway: one Strawberry schema over the five services."""
