"""The catalog's change feed: what changed in the catalog, for the gateway's response cache.

The catalog appends one entry to a Redis stream in the cache Redis after every write has committed
(and after its own cache moved to a new version, in the same script, so whoever reads the entry
and then asks the catalog gets the new data). Every gateway instance reads the stream from where
it stands, so each one learns of every change within milliseconds, however many run.

An entry says what kind of change it was:

- `content`: products or categories were created, changed or archived (rare, administrators'
  work): every cached answer may be affected;
- `stock`: the stock of the listed products changed (every order does this); `availability`
  says whether one of them sold out or came back, which changes the listings that filter on it.

Entries are numbered by a counter kept beside the stream, so a reader notices entries it never
saw (the stream is capped in length, and a cache Redis may be flushed) and then assumes that
everything changed.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM = "catalog:changes"
SEQUENCE = "catalog:changes:seq"
# Entries kept (approximately): readers are milliseconds behind, this is minutes of orders.
MAX_LENGTH = 10_000

CONTENT = "content"
STOCK = "stock"

# KEYS[1] the stream, KEYS[2] its counter; ARGV kind, product ids (comma-separated),
# availability ("1" or "0"). Appends the entry with the next number; returns the number.
APPEND = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
  'seq', seq, 'kind', ARGV[1], 'ids', ARGV[2], 'availability', ARGV[3])
return seq
"""


@dataclass(frozen=True)
class Change:
    """One change of the catalog; `seq` is 0 until the feed has numbered it."""

    kind: str
    product_ids: tuple[str, ...] = ()
    availability: bool = False
    seq: int = 0

    def arguments(self) -> list[str | int]:
        """ARGV of `APPEND` for this change."""
        return [self.kind, ",".join(self.product_ids), "1" if self.availability else "0", MAX_LENGTH]

    @classmethod
    def parse(cls, fields: dict[bytes, bytes]) -> Change | None:
        """A stream entry's change; None when it cannot be read (a reader then assumes the worst)."""
        try:
            kind = fields[b"kind"].decode()
            ids = fields.get(b"ids", b"").decode()
            return cls(
                kind=kind if kind in (CONTENT, STOCK) else CONTENT,
                product_ids=tuple(i for i in ids.split(",") if i),
                availability=fields.get(b"availability") == b"1",
                seq=int(fields[b"seq"]),
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return None


CONTENT_CHANGED = Change(CONTENT)


def stock_changed(product_ids: list[str] | tuple[str, ...] | set[str], *, availability: bool) -> Change:
    return Change(STOCK, tuple(sorted(product_ids)), availability)


def crosses_zero(old: int, new: int) -> bool:
    """Whether a stock change makes a product sell out or come back."""
    return (old > 0) != (new > 0)
