"""Per-request DataLoaders, named `<entity>_by_<key>`: every lookup of one request batches into one RPC.

Each domain module registers its batch function with `register`; `Loaders` (one per request)
creates the loader on first use, so a request only pays for the loaders it touches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

if TYPE_CHECKING:
    from gateway.context import Context

BatchFn = Callable[["Context", Sequence[Any]], Awaitable[Sequence[Any]]]
_BATCH_FUNCTIONS: dict[str, BatchFn] = {}


def register(name: str) -> Callable[[BatchFn], BatchFn]:
    """Decorator: `@register("product_by_id")` over `async def (ctx, keys) -> values in key order`."""

    def decorate(fn: BatchFn) -> BatchFn:
        _BATCH_FUNCTIONS[name] = fn
        return fn

    return decorate


class Loaders:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._loaders: dict[str, DataLoader[Any, Any]] = {}

    def __getattr__(self, name: str) -> DataLoader[Any, Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        loader = self._loaders.get(name)
        if loader is None:
            try:
                fn = _BATCH_FUNCTIONS[name]
            except KeyError:
                raise AttributeError(f"no DataLoader named {name!r}") from None
            context = self._context

            async def load(keys: list[Any], fn: BatchFn = fn) -> Sequence[Any]:
                return await fn(context, keys)

            loader = DataLoader(load_fn=load, max_batch_size=100)
            self._loaders[name] = loader
        return loader
