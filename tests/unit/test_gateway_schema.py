"""The gateway schema: the committed SDL is current, and the limits are wired in."""

from __future__ import annotations

import logging
from pathlib import Path

from graphql import GraphQLError

from gateway.errors import ApiError, camel_case, should_mask
from gateway.schema import create_schema, schema
from gateway.settings import GatewaySettings

SDL = Path(__file__).resolve().parents[2] / "gateway" / "schema.graphql"


def test_the_committed_sdl_matches_the_code():
    assert SDL.read_text() == schema.as_str() + "\n", "run `make schema` and commit gateway/schema.graphql"


def test_every_type_and_field_is_documented():
    undocumented = []
    for type_ in schema._schema.type_map.values():
        if type_.name.startswith("__") or type_.name in ("String", "Boolean", "Int", "Float", "ID"):
            continue
        if not type_.description:
            undocumented.append(type_.name)
        for name, field in (getattr(type_, "fields", None) or {}).items():
            if not field.description:
                undocumented.append(f"{type_.name}.{name}")
    assert undocumented == []


async def test_a_query_deeper_than_the_limit_is_refused_before_execution():
    shallow = create_schema(GatewaySettings(env="development", max_depth=2))

    result = await shallow.execute("query { accounts { edges { node { id } } } }")

    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message


async def test_production_turns_off_introspection_and_suggestions():
    production = create_schema(GatewaySettings(env="production"))

    introspection = await production.execute("query { __schema { types { name } } }")
    typename = await production.execute("query { __typename }")
    typo = await production.execute("query { mee { id } }")

    assert introspection.errors is not None
    assert typename.errors is None
    assert typo.errors is not None
    assert "Did you mean" not in typo.errors[0].message


def test_field_names_follow_graphql_casing():
    assert camel_case("current_password") == "currentPassword"
    assert camel_case("items.0.product_id") == "items.0.productId"


def test_only_unexpected_errors_are_masked():
    from graphql import GraphQLError

    ours = GraphQLError("nope", original_error=ApiError("nope", "NOT_FOUND"))
    theirs = GraphQLError("boom", original_error=RuntimeError("SELECT * FROM secrets"))
    validation = GraphQLError("Cannot query field")

    assert (should_mask(ours), should_mask(theirs), should_mask(validation)) == (False, True, False)


async def test_only_errors_a_client_could_not_have_caused_reach_the_error_log(caplog):
    refused = GraphQLError(
        "sign in first", path=["me"], original_error=ApiError("sign in first", "UNAUTHENTICATED")
    )
    invalid = GraphQLError("Cannot query field 'nope' on type 'Query'.")
    broken = GraphQLError("boom", path=["products"], original_error=RuntimeError("boom"))

    with caplog.at_level(logging.DEBUG, logger="strawberry.execution"):
        schema.process_errors([refused, invalid])
        assert caplog.records == []

        schema.process_errors([refused, broken, invalid])

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[1] is broken.original_error
