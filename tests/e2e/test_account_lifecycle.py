"""An account's life through GraphQL and the platform's local mailbox: a forgotten password reset
by the e-mailed link, an e-mail address verified by its link, a checkout to a saved address, and
the account deleted with no copy of its e-mail or address left in any service's database."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.e2e.personal_data import copies_everywhere
from tests.e2e.test_account_graphql import LOGIN, PASSWORD, admin_session, codes, first_error, sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product
from tests.e2e.test_notifications import CREATE_ORDER, ORDER, mail_to
from tests.helpers import eventually

pytestmark = pytest.mark.e2e

REQUEST_RESET = "mutation Ask($email: String!) { requestPasswordReset(email: $email) }"
RESET = """
mutation Reset($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password) { accessToken refreshToken account { id emailVerified } }
}"""
REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
VERIFY = "mutation Verify($token: String!) { verifyEmail(token: $token) { id email emailVerified } }"
REFRESH = "mutation Refresh($token: String!) { refreshToken(refreshToken: $token) { accessToken } }"
ME = "query { me { id emailVerified } }"
ADD_ADDRESS = """
mutation Add($input: AddressInput!) { addAddress(input: $input) { id isDefault country postalCode } }"""
MY_ADDRESSES = "query { me { addresses { id line1 isDefault } defaultAddress { id } } }"
EXPORT = "mutation { exportMyData }"
ORDER_ADDRESS = (
    "query Order($id: ID!) { order(id: $id) { shippingAddress { name line1 city postalCode country } } }"
)
NEW_PASSWORD = "a fresh and long passphrase"
SAVED = {
    "name": "Grace Hopper",
    "line1": "7 Compiler Lane",
    "city": "Arlington",
    "postalCode": "22201",
    "country": "us",
}


async def link_in_mail(gateway, address: str, subject: str, path: str) -> str:
    """The link of the e-mail to `address` whose subject starts with `subject`, once it arrived."""

    async def arrived() -> Any:
        found = [m for m in mail_to(gateway, address) if m["Subject"].startswith(subject)]
        return found[0] if found else None

    message = await eventually(arrived, timeout=30, what=f"a {subject!r} e-mail to {address}")
    text = message.get_body(preferencelist=("plain",)).get_content()
    links = re.findall(r"https?://\S+/" + path + r"\?token=[\w%-]+", text)
    assert len(links) == 1, text
    return links[0]


def token_of(link: str) -> str:
    return link.partition("?token=")[2]


async def test_a_forgotten_password_is_reset_through_the_emailed_link(gateway):
    registered = await sign_up(gateway)
    email = registered["account"]["email"]

    asked = await gateway.post(REQUEST_RESET, {"email": email})
    unknown = await gateway.post(REQUEST_RESET, {"email": "nobody-" + email})

    assert asked["data"] == unknown["data"] == {"requestPasswordReset": True}
    assert "errors" not in asked
    assert "errors" not in unknown
    link = await link_in_mail(gateway, email, "Reset your", "reset-password")
    reset = await gateway.post(RESET, {"token": token_of(link), "password": NEW_PASSWORD})
    assert "errors" not in reset, reset
    session = reset["data"]["resetPassword"]
    assert session["account"] == {"id": registered["account"]["id"], "emailVerified": True}

    old = await gateway.post(ME, token=registered["accessToken"])
    assert codes(old) == ["UNAUTHENTICATED"]
    old_refresh = await gateway.post(REFRESH, {"token": registered["refreshToken"]})
    assert codes(old_refresh) == ["UNAUTHENTICATED"]
    assert codes(await gateway.post(LOGIN, {"email": email, "password": PASSWORD})) == ["UNAUTHENTICATED"]
    assert "errors" not in await gateway.post(LOGIN, {"email": email, "password": NEW_PASSWORD})
    me = await gateway.post(ME, token=session["accessToken"])
    assert me["data"]["me"]["id"] == registered["account"]["id"]

    again = await gateway.post(RESET, {"token": token_of(link), "password": "yet another passphrase"})
    assert codes(again) == ["BAD_USER_INPUT"]
    assert first_error(again)["extensions"]["field"] == "token"


async def test_an_email_address_is_verified_through_the_emailed_link(gateway):
    registered = await sign_up(gateway)
    email = registered["account"]["email"]
    assert codes(await gateway.post(REQUEST_VERIFICATION)) == ["UNAUTHENTICATED"]

    asked = await gateway.post(REQUEST_VERIFICATION, token=registered["accessToken"])

    assert asked["data"] == {"requestEmailVerification": True}
    link = await link_in_mail(gateway, email, "Confirm your e-mail", "verify-email")
    verified = await gateway.post(VERIFY, {"token": token_of(link)})
    assert verified["data"]["verifyEmail"] == {
        "id": registered["account"]["id"],
        "email": email,
        "emailVerified": True,
    }
    refreshed = await gateway.post(REFRESH, {"token": registered["refreshToken"]})
    me = await gateway.post(ME, token=refreshed["data"]["refreshToken"]["accessToken"])
    assert me["data"]["me"]["emailVerified"] is True
    again = await gateway.post(VERIFY, {"token": token_of(link)})
    assert codes(again) == ["BAD_USER_INPUT"]


@pytest.fixture(scope="module")
async def product_id(gateway) -> str:
    admin = (await admin_session(gateway))["accessToken"]
    category = await new_category(gateway, admin, "Lifecycle")
    return (await new_product(gateway, admin, category, name="Desk Lamp", price="19.90", stock=50))["id"]


async def test_a_checkout_ships_to_a_saved_address_named_by_id_and_the_export_holds_it_all(
    gateway, product_id
):
    signed_up = await sign_up(gateway)
    customer = signed_up["accessToken"]
    stranger = (await sign_up(gateway))["accessToken"]
    added = await gateway.post(ADD_ADDRESS, {"input": SAVED}, token=customer)
    assert "errors" not in added, added
    address = added["data"]["addAddress"]
    assert (address["isDefault"], address["country"]) == (True, "US")
    mine = await gateway.post(MY_ADDRESSES, token=customer)
    assert mine["data"]["me"] == {
        "addresses": [{"id": address["id"], "line1": "7 Compiler Lane", "isDefault": True}],
        "defaultAddress": {"id": address["id"]},
    }

    def order_input(**extra: Any) -> dict[str, Any]:
        items = [{"productId": product_id, "quantity": 1}]
        return {"input": {"items": items, "paymentToken": "tok_visa", **extra}}

    placed = await gateway.post(CREATE_ORDER, order_input(addressId=address["id"]), token=customer)
    assert "errors" not in placed, placed
    order = await gateway.post(ORDER_ADDRESS, {"id": placed["data"]["createOrder"]["id"]}, token=customer)
    assert order["data"]["order"]["shippingAddress"] == {
        "name": "Grace Hopper",
        "line1": "7 Compiler Lane",
        "city": "Arlington",
        "postalCode": "22201",
        "country": "US",
    }

    foreign = await gateway.post(CREATE_ORDER, order_input(addressId=address["id"]), token=stranger)
    assert codes(foreign) == ["NOT_FOUND"]
    both = await gateway.post(
        CREATE_ORDER, order_input(addressId=address["id"], shippingAddress=SAVED), token=customer
    )
    assert codes(both) == ["BAD_USER_INPUT"]
    assert codes(await gateway.post(CREATE_ORDER, order_input(), token=customer)) == ["BAD_USER_INPUT"]

    async def welcomed() -> Any:
        return mail_to(gateway, signed_up["account"]["email"]) or None

    async def confirmed() -> bool:
        # The payment exists once the saga has taken it; the export is read after that.
        answer = await gateway.post(ORDER, {"id": placed["data"]["createOrder"]["id"]}, token=customer)
        return answer["data"]["order"]["status"] == "CONFIRMED"

    await eventually(welcomed, timeout=30, what="the welcome e-mail")
    await eventually(confirmed, timeout=30, what="the order confirmed")
    exported = await gateway.post(EXPORT, token=customer)
    assert "errors" not in exported, exported
    document = json.loads(exported["data"]["exportMyData"])
    assert document["account"]["email"] == signed_up["account"]["email"]
    assert [a["id"] for a in document["addresses"]] == [address["id"]]
    [order] = document["orders"]
    assert order["id"] == placed["data"]["createOrder"]["id"]
    assert order["shippingAddress"]["line1"] == "7 Compiler Lane"
    assert order["payment"]["orderId"] == order["id"]
    assert [n["template"] for n in document["notifications"]].count("welcome") == 1
    assert codes(await gateway.post(EXPORT)) == ["UNAUTHENTICATED"]


DELETE_ACCOUNT = "mutation Delete($password: String!) { deleteMyAccount(password: $password) }"


async def test_a_deleted_account_leaves_no_copy_of_its_email_or_address_in_any_database(gateway, product_id):
    signed_up = await sign_up(gateway, name="Erin Erasable")
    customer, email = signed_up["accessToken"], signed_up["account"]["email"]
    street = f"{uuid.uuid4().hex[:10]} Erasure Street"
    added = await gateway.post(ADD_ADDRESS, {"input": {**SAVED, "line1": street}}, token=customer)
    items = [{"productId": product_id, "quantity": 1}]
    order_input = {"items": items, "paymentToken": "tok_visa", "addressId": added["data"]["addAddress"]["id"]}
    placed = await gateway.post(CREATE_ORDER, {"input": order_input}, token=customer)
    assert "errors" not in placed, placed

    async def mailed() -> Any:
        subjects = [m["Subject"] for m in mail_to(gateway, email)]
        return subjects if any(s.endswith("is confirmed") for s in subjects) and len(subjects) >= 2 else None

    await eventually(mailed, timeout=30, what="the welcome and order e-mails")
    held = await copies_everywhere(gateway.platform, [email, street])
    assert {"account", "order", "notification"} <= held.keys(), held

    wrong = await gateway.post(DELETE_ACCOUNT, {"password": "not the password"}, token=customer)
    assert codes(wrong) == ["BAD_USER_INPUT"]
    assert codes(await gateway.post(DELETE_ACCOUNT, {"password": PASSWORD})) == ["UNAUTHENTICATED"]
    deleted = await gateway.post(DELETE_ACCOUNT, {"password": PASSWORD}, token=customer)
    assert "errors" not in deleted, deleted
    assert deleted["data"] == {"deleteMyAccount": True}

    async def erased() -> bool:
        return await copies_everywhere(gateway.platform, [email, street]) == {}

    await eventually(erased, timeout=30, what="no copy of the e-mail or the street in any database")
    assert codes(await gateway.post(ME, token=customer)) == ["UNAUTHENTICATED"]
    assert codes(await gateway.post(REFRESH, {"token": signed_up["refreshToken"]})) == ["UNAUTHENTICATED"]
    again = await gateway.post(DELETE_ACCOUNT, {"password": PASSWORD}, token=customer)
    assert codes(again) == ["UNAUTHENTICATED"]
    assert codes(await gateway.post(LOGIN, {"email": email, "password": PASSWORD})) == ["UNAUTHENTICATED"]
    # The shop's books keep the order: the customer may register again, as a new account.
    registered_again = await sign_up(gateway, email=email)
    assert registered_again["account"]["id"] != signed_up["account"]["id"]
