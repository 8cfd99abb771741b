"""The gateway's parse and validation caches (gateway/documents.py): a text parsed once, its
document validated once, by the document's identity; bounded; errors never kept in place of a
document."""

from __future__ import annotations

import pytest
from graphql import GraphQLSyntaxError, build_schema, parse

from gateway import documents
from gateway.documents import DocumentCache
from gateway.limits import depth_rule

SCHEMA = build_schema("type Query { a: Int, b: Query }")


def test_the_same_text_gives_the_same_document_object():
    cache = DocumentCache(maxsize=8)

    first = cache.parse("{ a }", 100)

    assert cache.parse("{ a }", 100) is first
    assert cache.parse("{ a }", 100) == parse("{ a }")
    assert cache.parse("{ b { a } }", 100) is not first


def test_a_document_is_validated_once_and_recognised_by_identity_not_by_its_tree(monkeypatch):
    cache = DocumentCache(maxsize=8)
    runs: list[object] = []
    real = documents.validate_document

    def counting(schema, document, rules):
        runs.append(document)
        return real(schema, document, rules)

    monkeypatch.setattr(documents, "validate_document", counting)
    rules = (depth_rule(1),)
    document = cache.parse("{ b { a } }", 100)

    first = cache.validate(SCHEMA, document, rules)
    again = cache.validate(SCHEMA, document, rules)
    equal_but_another = cache.validate(SCHEMA, parse("{ b { a } }"), rules)

    assert [(e.extensions or {}).get("code") for e in first] == ["QUERY_TOO_DEEP"]
    assert again is first
    assert len(runs) == 2  # the equal tree parsed apart is another document: validated on its own
    assert [e.message for e in equal_but_another] == [e.message for e in first]


def test_other_rules_validate_the_same_document_again():
    cache = DocumentCache(maxsize=8)
    document = cache.parse("{ b { a } }", 100)

    assert cache.validate(SCHEMA, document, (depth_rule(1),))
    assert cache.validate(SCHEMA, document, (depth_rule(5),)) == []


def test_the_caches_keep_only_the_most_recent_documents():
    cache = DocumentCache(maxsize=2)
    oldest = cache.parse("{ a }", 100)
    evicted = cache.parse("{ b { a } }", 100)
    cache.parse("{ a }", 100)  # used again: now the most recent
    cache.parse("{ b { b { a } } }", 100)

    assert len(cache._parsed) == 2
    assert cache.parse("{ a }", 100) is oldest
    assert cache.parse("{ b { a } }", 100) is not evicted  # parsed anew


def test_a_text_that_does_not_parse_is_refused_every_time_and_never_kept():
    cache = DocumentCache(maxsize=8)

    for _ in range(2):
        with pytest.raises(GraphQLSyntaxError):
            cache.parse("{ a", 100)
    with pytest.raises(GraphQLSyntaxError, match="tokens"):
        cache.parse("{ a a a a a }", 3)

    assert len(cache._parsed) == 0
