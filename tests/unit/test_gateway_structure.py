"""The gateway's shape, checked: no two of its modules import each other (directly or through a
chain, type-checking imports included), and no source file grows past what one reader holds."""

from __future__ import annotations

import itertools
from pathlib import Path

import grimp

import gateway

MAX_LINES = 600


def test_no_two_gateway_modules_import_each_other():
    graph = grimp.build_graph("gateway", cache_dir=None)

    cycles = [
        (a, b)
        for a, b in itertools.combinations(sorted(graph.modules), 2)
        if graph.chain_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)
    ]

    assert cycles == []


def test_no_gateway_source_file_is_over_600_lines():
    root = Path(gateway.__file__).parent

    long = {
        str(path.relative_to(root)): n
        for path in root.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }

    assert long == {}
