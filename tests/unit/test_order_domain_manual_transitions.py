"""Shipping and delivering by hand, allowed only from the status before."""

from __future__ import annotations

import pytest

from order.domain import DeliverRequested, IllegalTransition, ShipRequested
from tests.unit.order_sagas import ALL_STATES, decide, delivered, shipped


@pytest.mark.parametrize("name", sorted(set(ALL_STATES) - {"confirmed", "shipped"}))
def test_shipping_is_allowed_only_from_confirmed(name):
    with pytest.raises(IllegalTransition):
        decide(ALL_STATES[name](), ShipRequested(by="admin"))


@pytest.mark.parametrize("name", sorted(set(ALL_STATES) - {"shipped", "delivered"}))
def test_delivering_is_allowed_only_from_shipped(name):
    with pytest.raises(IllegalTransition):
        decide(ALL_STATES[name](), DeliverRequested(by="admin"))


def test_shipping_a_shipped_order_and_delivering_a_delivered_one_change_nothing():
    assert decide(shipped(), ShipRequested(by="admin")).saga == shipped()
    assert decide(delivered(), DeliverRequested(by="admin")).saga == delivered()
    assert decide(shipped(), ShipRequested(by="admin")).history == ()
