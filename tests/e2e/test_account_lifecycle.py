"""An account's life through GraphQL and the platform's local mailbox: a forgotten password reset
by the e-mailed link, and an e-mail address verified by its link."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.test_account_graphql import LOGIN, PASSWORD, codes, first_error, sign_up
from tests.e2e.test_notifications import mail_to
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
NEW_PASSWORD = "a fresh and long passphrase"


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
