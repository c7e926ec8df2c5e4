"""A person changes, resets and signs out; invited members choose their own password; tokens
are JWTs whose signing key rotates without signing anyone out."""

import asyncio
import uuid

import jwt
from fastapi import FastAPI
from httpx import AsyncClient

from app.tenancy.ratelimit import RESET_MAILS_PER_ACCOUNT, RESET_REQUESTS_PER_ADDRESS
from app.tenancy.security import TokenPurpose, issue_token, key_id, read_token
from tests.mailbox import Mailbox
from tests.tenancy.helpers import PASSWORD, bearer, join, problem_type, sign_in, sign_up

NEW_PASSWORD = "a different long passphrase"


async def _token(client: AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await sign_in(client, email, password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def test_changing_the_password_signs_out_every_other_session(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    laptop = await _token(client, "owner@acme.com")

    wrong = await client.post(
        "/api/v1/me/password",
        headers=firm.headers,
        json={"current_password": "not my password at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 400 and problem_type(wrong) == "wrong-password"
    assert (await client.get("/api/v1/me", headers=laptop)).status_code == 200

    changed = await client.post(
        "/api/v1/me/password",
        headers=firm.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    for old in (laptop, firm.headers):
        assert (await client.get("/api/v1/me", headers=old)).status_code == 401
    fresh = bearer(changed.json()["access_token"])
    assert (await client.get("/api/v1/me", headers=fresh)).status_code == 200
    assert (await sign_in(client, "owner@acme.com")).status_code == 401
    assert (await sign_in(client, "owner@acme.com", NEW_PASSWORD)).status_code == 200


async def test_logout_revokes_that_token_only(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    phone = await _token(client, "owner@acme.com")
    assert (await client.post("/api/v1/auth/logout", headers=firm.headers)).status_code == 204
    gone = await client.get("/api/v1/me", headers=firm.headers)
    assert gone.status_code == 401 and problem_type(gone) == "invalid-token"
    assert (await client.post("/api/v1/auth/logout", headers=firm.headers)).status_code == 401
    assert (await client.get("/api/v1/me", headers=phone)).status_code == 200


async def test_a_reset_answers_alike_and_mails_a_single_use_link(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    known = await client.post("/api/v1/auth/password-reset", json={"email": "Owner@acme.com"})
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": "who@acme.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert mailbox.to("who@acme.com") == []
    token = await mailbox.link_token("owner@acme.com")

    as_bearer = await client.get("/api/v1/me", headers=bearer(token))
    assert as_bearer.status_code == 401  # a reset link is no sign-in token

    body = {"token": token, "password": NEW_PASSWORD}
    confirmed = await client.post("/api/v1/auth/password-reset/confirm", json=body)
    assert confirmed.status_code == 200, confirmed.text
    assert (await client.get("/api/v1/me", headers=firm.headers)).status_code == 401
    assert (await sign_in(client, "owner@acme.com", NEW_PASSWORD)).status_code == 200

    again = await client.post(
        "/api/v1/auth/password-reset/confirm", json={**body, "password": "yet another password"}
    )
    assert again.status_code == 400 and problem_type(again) == "invalid-reset-link"
    assert (await sign_in(client, "owner@acme.com", NEW_PASSWORD)).status_code == 200


async def test_an_expired_or_foreign_reset_link_is_refused(
    app: FastAPI, client: AsyncClient
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    user_id = uuid.UUID((await client.get("/api/v1/me", headers=firm.headers)).json()["user_id"])
    keys = app.state.secrets.signing_keys  # type: ignore[attr-defined]
    expired = issue_token(keys, user_id, 0, TokenPurpose.PASSWORD_RESET, ttl=-1).token
    invitation = issue_token(keys, user_id, 0, TokenPurpose.INVITATION).token
    for token in (expired, invitation, firm.token, "not-a-token"):
        response = await client.post(
            "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert response.status_code == 400 and problem_type(response) == "invalid-reset-link"
    assert (await sign_in(client, "owner@acme.com")).status_code == 200


async def test_members_are_invited_and_choose_their_own_password(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    chosen = await client.post(
        "/api/v1/members", headers=admin.headers, json={"email": "x@acme.com", "password": PASSWORD}
    )
    assert chosen.status_code == 422  # admins choose no one's password

    invited = await client.post(
        "/api/v1/members", headers=admin.headers, json={"email": "staff@acme.com"}
    )
    assert invited.status_code == 201 and invited.json()["invitation_pending"] is True
    message = mailbox.to("staff@acme.com")
    assert message and "Acme" in message[0]["Subject"]
    assert (await sign_in(client, "staff@acme.com")).status_code == 401

    token = await mailbox.link_token("staff@acme.com")
    body = {"token": token, "password": PASSWORD}
    accepted = await client.post("/api/v1/invitations/accept", json=body)
    assert accepted.status_code == 200, accepted.text
    me = await client.get("/api/v1/me", headers=bearer(accepted.json()["access_token"]))
    assert me.json()["role"] == "member" and me.json()["tenant"]["name"] == "Acme"
    again = await client.post("/api/v1/invitations/accept", json=body)
    assert again.status_code == 400 and problem_type(again) == "invalid-invitation-link"
    members = (await client.get("/api/v1/members", headers=admin.headers)).json()["items"]
    assert [m["invitation_pending"] for m in members] == [False, False]


async def test_a_removed_invitee_cannot_accept(client: AsyncClient, mailbox: Mailbox) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    invited = await client.post(
        "/api/v1/members", headers=admin.headers, json={"email": "staff@acme.com"}
    )
    await client.delete(f"/api/v1/members/{invited.json()['id']}", headers=admin.headers)
    token = await mailbox.link_token("staff@acme.com")
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD}
    )
    assert accepted.status_code == 400


async def test_a_member_joins_through_the_helper(client: AsyncClient) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    _, member = await join(client, admin.headers, "staff@acme.com")
    assert (await client.get("/api/v1/me", headers=member)).json()["role"] == "member"


def test_tokens_are_jwts_naming_their_key_and_rotation_keeps_old_ones_valid() -> None:
    old, new = "o" * 40, "n" * 40
    user = uuid.uuid4()
    before = issue_token((old,), user, 3).token
    assert jwt.get_unverified_header(before)["kid"] == key_id(old)

    rotated = (new, old)
    claims = read_token(rotated, before)
    assert claims is not None and claims.user_id == user and claims.generation == 3
    after = issue_token(rotated, user, 3).token
    assert jwt.get_unverified_header(after)["kid"] == key_id(new)
    assert read_token((new,), after) is not None
    assert read_token((new,), before) is None  # the old key removed: its tokens end
    assert read_token(rotated, before, TokenPurpose.PASSWORD_RESET) is None


async def test_reset_requests_cannot_flood_a_mailbox_or_the_mail_server(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    answers = [
        await client.post("/api/v1/auth/password-reset", json={"email": "owner@acme.com"})
        for _ in range(RESET_MAILS_PER_ACCOUNT + 3)
    ]
    assert {answer.status_code for answer in answers} == {202}
    await mailbox.link_token("owner@acme.com")
    await asyncio.sleep(0.3)  # any mail beyond the limit would have arrived by now
    assert len(mailbox.to("owner@acme.com")) == RESET_MAILS_PER_ACCOUNT

    for n in range(RESET_REQUESTS_PER_ADDRESS):
        await client.post("/api/v1/auth/password-reset", json={"email": f"p{n}@acme.com"})
    refused = await client.post("/api/v1/auth/password-reset", json={"email": "late@acme.com"})
    assert refused.status_code == 429 and problem_type(refused) == "too-many-reset-requests"
    assert int(refused.headers["Retry-After"]) > 0
