"""servicekit.postal: the address fields every service and the gateway copy by name."""

from __future__ import annotations

from types import SimpleNamespace

from servicekit.postal import address_fields


def test_the_address_fields_are_copied_by_name_and_a_missing_optional_one_is_empty():
    source = SimpleNamespace(
        name="Ada",
        line1="1 Main St",
        line2=None,
        city="Berlin",
        region=None,
        postal_code="10115",
        country="DE",
    )
    assert address_fields(source) == {
        "name": "Ada",
        "line1": "1 Main St",
        "line2": "",
        "city": "Berlin",
        "region": "",
        "postal_code": "10115",
        "country": "DE",
    }
