"""The e-mail templates: for each one a subject, a plain-text part and an HTML part.

`<name>.subject.txt`, `<name>.txt` and `<name>.html` sit next to this file. HTML is autoescaped,
so nothing an event carries (a product name, an address) can inject markup. A variable the event
did not carry renders as nothing and is reported as a gap: the message still goes out, and the
gap is logged once per message, naming the template and the variables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader, Undefined, select_autoescape

from servicekit.money import format_money

log = logging.getLogger(__name__)

TEMPLATES = (
    "welcome",
    "password_reset",
    "verify_email",
    "registration_attempted",
    "order_confirmed",
    "order_cancelled",
    "order_shipped",
    "order_delivered",
    "payment_refunded",
    "stock_low",
)
MAX_SUBJECT_LENGTH = 200

_gaps: ContextVar[list[str] | None] = ContextVar("template_gaps", default=None)


class GapUndefined(ChainableUndefined):
    """A missing variable: renders as an empty string (`a.b.c` too) and records its name."""

    __slots__ = ()

    def _record(self) -> None:
        gaps = _gaps.get()
        if gaps is not None:
            gaps.append(self._undefined_name or "?")

    def __str__(self) -> str:
        self._record()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._record()
        return iter(())

    def __len__(self) -> int:
        self._record()
        return 0


def _money(value: Any) -> str:
    """`{{ total | money }}` for a `{"amount_minor": 1250, "currency": "EUR"}` value: `12.50 EUR`."""
    if isinstance(value, Undefined):
        return str(value)
    try:
        return format_money(int(value["amount_minor"]), str(value["currency"]))
    except (KeyError, TypeError, ValueError):
        gaps = _gaps.get()
        if gaps is not None:
            gaps.append("money")
        return ""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    # Variables the templates asked for and the event did not carry, sorted, without repeats.
    gaps: tuple[str, ...] = ()


class TemplateRenderer:
    def __init__(self, *, shop_name: str = "Ecommerce Shop", shop_url: str = "http://127.0.0.1:8000") -> None:
        self.shop_name = shop_name
        # Where the shop's pages are: a guest's order e-mails link to `<shop_url>/orders/<id>`.
        self.shop_url = shop_url.rstrip("/")
        self.environment = Environment(
            loader=PackageLoader("notification", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
            undefined=GapUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.environment.filters["money"] = _money

    def render(self, template: str, variables: dict[str, Any], *, reference: str = "") -> RenderedMessage:
        """The message; its gaps are logged (with `reference`, e.g. the notification id)."""
        if template not in TEMPLATES:
            raise LookupError(f"no template named {template!r}")
        values = {"shop_name": self.shop_name, "shop_url": self.shop_url, **variables}
        gaps: list[str] = []
        token = _gaps.set(gaps)
        try:
            subject = self.environment.get_template(f"{template}.subject.txt").render(values)
            text = self.environment.get_template(f"{template}.txt").render(values)
            html = self.environment.get_template(f"{template}.html").render(values)
        finally:
            _gaps.reset(token)
        missing = tuple(sorted(set(gaps)))
        if missing:
            log.warning(
                "template %s rendered with missing variables: %s",
                template,
                ", ".join(missing),
                extra={"template": template, "missing_variables": list(missing), "reference": reference},
            )
        return RenderedMessage(_one_line(subject), _tidy(text), html, missing)


def _one_line(subject: str) -> str:
    """A header value: one line, no runs of spaces, bounded."""
    return re.sub(r"\s+", " ", subject).strip()[:MAX_SUBJECT_LENGTH]


def _tidy(text: str) -> str:
    """No more than one blank line in a row, no trailing spaces (what a gap leaves behind)."""
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
