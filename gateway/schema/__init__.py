"""The schema: one module per domain, composed here."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from gateway.errors import should_mask
from gateway.schema.account import AccountMutation, AccountQuery
from gateway.settings import GatewaySettings

Query = merge_types("Query", (AccountQuery,))
Mutation = merge_types("Mutation", (AccountMutation,))
Query.__strawberry_definition__.description = "What can be read."
Mutation.__strawberry_definition__.description = "What can be changed."


def create_schema(settings: GatewaySettings) -> strawberry.Schema:
    extensions: list = [
        lambda: QueryDepthLimiter(max_depth=settings.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: MaskErrors(should_mask_error=should_mask, error_message="internal error"),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.production),
    )


# The development schema, for `strawberry export-schema gateway.schema:schema` and its test.
schema = create_schema(GatewaySettings(env="development"))
