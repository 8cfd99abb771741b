"""Parsed and validated documents, kept across requests: one schema extension for what four of
Strawberry's did (MaxTokensLimiter, AddValidationRules, ParserCache, ValidationCache).

Parsing stops after `GATEWAY_MAX_TOKENS` tokens (TOO_MANY_TOKENS). A query text is parsed once
and its document validated once: the parse cache gives the same `DocumentNode` for the same text,
so the validation cache is keyed on that object's identity. graphql-core's AST nodes are frozen
dataclasses whose hash walks the whole tree on every lookup (microseconds for a small query, a
millisecond for a large one); a lookup by identity costs nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


class DocumentCache:
    """The last `maxsize` parsed query texts and validated documents of one schema (LRU). A text
    that does not parse is not kept: its error is raised again."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._parsed: OrderedDict[tuple[str, int], DocumentNode] = OrderedDict()
        # By the document's id; the entry holds the document, so the id is not reused meanwhile.
        self._validated: OrderedDict[
            int, tuple[DocumentNode, tuple[type[ASTValidationRule], ...], list[GraphQLError]]
        ] = OrderedDict()

    def parse(self, query: str, max_tokens: int) -> DocumentNode:
        key = (query, max_tokens)
        document = self._parsed.get(key)
        if document is None:
            document = parse(query, max_tokens=max_tokens)
            self._keep(self._parsed, key, document)
        else:
            self._parsed.move_to_end(key)
        return document

    def validate(
        self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        entry = self._validated.get(id(document))
        if entry is not None and entry[0] is document and entry[1] == rules:
            self._validated.move_to_end(id(document))
            return entry[2]
        errors = validate_document(schema, document, rules)
        self._keep(self._validated, id(document), (document, rules, errors))
        return errors

    def _keep(self, cache: OrderedDict, key: object, value: object) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.maxsize:
            cache.popitem(last=False)


class Documents(SchemaExtension):
    """Adds the gateway's validation rules (gateway.limits), and parses and validates through the
    schema's `DocumentCache`."""

    def __init__(
        self, cache: DocumentCache, *, max_tokens: int, rules: Sequence[type[ASTValidationRule]]
    ) -> None:
        self.cache = cache
        self.max_tokens = max_tokens
        self.rules = tuple(rules)

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        ctx.validation_rules = ctx.validation_rules + self.rules
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        # Parsed as Strawberry's ParserCache did, a missing query included (graphql-core refuses it).
        ctx.graphql_document = self.cache.parse(ctx.query, self.max_tokens)  # type: ignore[arg-type]
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        assert ctx.graphql_document is not None
        ctx.pre_execution_errors = self.cache.validate(
            ctx.schema._schema, ctx.graphql_document, ctx.validation_rules
        )
        yield
