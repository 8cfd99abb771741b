"""The schema: one module per domain, composed here."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.base import get_object_definition

from gateway.caching import ResponseCaching
from gateway.documents import DocumentCache, Documents
from gateway.errors import should_mask
from gateway.execution import PlainFieldsExecutionContext
from gateway.extensions import batching_config, protection_extensions
from gateway.limits import document_rules
from gateway.metrics import Observability
from gateway.schema.account import AccountMutation, AccountQuery
from gateway.schema.address import AddressMutation
from gateway.schema.cart import CartMutation, CartQuery
from gateway.schema.catalog import CatalogMutation, CatalogQuery
from gateway.schema.export import ExportMutation
from gateway.schema.notification import NotificationMutation, NotificationQuery
from gateway.schema.order import OrderMutation, OrderQuery
from gateway.schema.order_listing import OrderListQuery
from gateway.schema.payment import PaymentMutation
from gateway.schema.ratelimit import RateLimitQuery
from gateway.schema.subscription import OrderSubscription, WebSocketSubscriptions
from gateway.schema.variants import VariantMutation, VariantQuery
from gateway.settings import GatewaySettings

Query = merge_types(
    "Query",
    (
        AccountQuery,
        CatalogQuery,
        VariantQuery,
        OrderQuery,
        OrderListQuery,
        CartQuery,
        RateLimitQuery,
        NotificationQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AccountMutation,
        AddressMutation,
        ExportMutation,
        CatalogMutation,
        VariantMutation,
        PaymentMutation,
        OrderMutation,
        CartMutation,
        NotificationMutation,
    ),
)
Subscription = merge_types("Subscription", (OrderSubscription,))
get_object_definition(Query, strict=True).description = "What can be read."
get_object_definition(Mutation, strict=True).description = "What can be changed."
get_object_definition(
    Subscription, strict=True
).description = "What can be watched live (graphql-transport-ws)."


class GatewaySchema(strawberry.Schema):
    """Logs only the errors a client could not have caused.

    Strawberry logs every error of every answer at ERROR with its traceback: a wrong password, a
    missing token or a refused limit would fill the error log and hide the faults in it. Those
    are in the access log with their code; what gets masked as INTERNAL is still logged here."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        super().process_errors([e for e in errors if should_mask(e)], execution_context)


def create_schema(settings: GatewaySettings) -> strawberry.Schema:
    documents = DocumentCache(maxsize=512)
    rules = document_rules(settings)  # depth, aliases, directives
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        Observability,  # outermost: its span and timing cover everything below
        ResponseCaching,  # keeps cacheable answers, with the costs the limiter below records
        *protection_extensions(settings),  # error codes, cost, budgets, persisted queries
        WebSocketSubscriptions,  # a subscription over HTTP is BAD_REQUEST, before it runs
        lambda: MaskErrors(should_mask_error=should_mask, error_message="internal error"),
        # Token limit, document limits, parse and validation caches.
        lambda: Documents(documents, max_tokens=settings.max_tokens, rules=rules),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=PlainFieldsExecutionContext,
        config=StrawberryConfig(
            disable_field_suggestions=settings.production, batching_config=batching_config(settings)
        ),
    )


# The development schema, for `strawberry export-schema gateway.schema:schema` and its test.
schema = create_schema(GatewaySettings(env="development"))
