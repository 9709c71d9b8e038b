"""Rules of the provider beyond the attack list: refresh-token reuse, max_age, subjects, encrypted
and non-ES256 tokens (checked with libraries we did not write), introspection, lockout and
back-off, step-up through the app."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from server.storage.audit import AuditEventRow
from tests.server.identity.harness import (
    Browser,
    Citizen,
    CitizenApp,
    IdentityServer,
    callback_params,
    public_jwk,
)
from tests.server.identity.raw import RawClient, logged_in_browser
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from vnid.assurance import Amr, AssuranceLevel
from vnid.authn.throttle import ThrottlePolicy, ThrottleState
from vnid.oidc.records import ProviderSession

NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"
ENC_EC = ec.generate_private_key(ec.SECP256R1())
ENC_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _extra_clients(server: IdentityServer) -> list[dict[str, object]]:
    clients = server.default_clients()
    jwe = server.client("dvc-jwe")
    enc_ec = {**ECAlgorithm.to_jwk(ENC_EC.public_key(), as_dict=True), "kid": "enc-ec",
              "use": "enc"}
    rsa_jwk = RSAAlgorithm.to_jwk(ENC_RSA.public_key(), as_dict=True)
    enc_rsa = {"kty": "RSA", "n": rsa_jwk["n"], "e": rsa_jwk["e"], "kid": "enc-rsa", "use": "enc"}
    clients.append(server.fapi_metadata(
        jwe, jwks={"keys": [public_jwk(jwe.key, jwe.kid), enc_ec, enc_rsa]},
        id_token_signed_response_alg="PS256", id_token_encrypted_response_alg="ECDH-ES+A256KW",
        userinfo_signed_response_alg="EdDSA", userinfo_encrypted_response_alg="RSA-OAEP-256",
        require_consent=False))
    return clients


@pytest.fixture(scope="module")
def db_and_idp(pki: TestPki, postgres_templates: PostgresTemplates,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, IdentityServer]]:
    directory = tmp_path_factory.mktemp("idp-rules")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False),
                            clients=_extra_clients,
                            extra_identity={"throttle_account": {
                                "free_attempts": 2, "base_delay_seconds": 60,
                                "lockout_after": 4}}) as server:
            yield db, server


@pytest.fixture(scope="module")
def idp(db_and_idp: tuple[object, IdentityServer]) -> IdentityServer:
    return db_and_idp[1]


@pytest.fixture
def hcm(idp: IdentityServer) -> Iterator[RawClient]:
    client = RawClient(idp, "dvc-hcm")
    yield client
    client.close()


def jwks(idp: IdentityServer) -> dict[str, jwt.PyJWK]:
    return {k["kid"]: jwt.PyJWK(k) for k in httpx.get(idp.issuer + "/jwks").json()["keys"]}


def test_refresh_token_reuse_revokes_the_grant(idp: IdentityServer, hcm: RawClient) -> None:
    citizen = idp.citizen("079084000801", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    browser.close()
    tokens = hcm.redeem(params["code"]).json()
    first = hcm.post("/token", {"grant_type": "refresh_token",
                                "refresh_token": tokens["refresh_token"], **hcm.auth()})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    replay = hcm.post("/token", {"grant_type": "refresh_token",
                                 "refresh_token": tokens["refresh_token"], **hcm.auth()})
    assert replay.json()["error"] == "invalid_grant"
    # The thief's replay killed the whole family, including the legitimate new tokens.
    assert hcm.userinfo(rotated["access_token"]).status_code == 401
    again = hcm.post("/token", {"grant_type": "refresh_token",
                                "refresh_token": rotated["refresh_token"], **hcm.auth()})
    assert again.json()["error"] == "invalid_grant"


def test_max_age_forces_a_new_login(idp: IdentityServer, hcm: RawClient) -> None:
    citizen = idp.citizen("079084000802", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    try:
        first = jwt.decode(hcm.redeem(params["code"]).json()["id_token"],
                           options={"verify_signature": False})
        silent = hcm.code(browser, max_age="3600")
        assert "code" in silent
        r = hcm.par(max_age="0")
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        assert 'name="password"' in browser.page  # too old for max_age=0: log in again
        params = callback_params(browser.login(citizen))
        second = jwt.decode(hcm.redeem(params["code"]).json()["id_token"],
                            options={"verify_signature": False})
        assert second["auth_time"] >= first["auth_time"] and second["sid"] == first["sid"]
    finally:
        browser.close()


def test_pairwise_and_public_subjects(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000803", totp=False, level2=False)
    subs = {}
    browser = Browser(idp.issuer)
    try:
        for client_id in ("dvc-hcm", "dvc-hanoi"):
            client = RawClient(idp, client_id)
            r = client.par()
            browser.go(client.authorize_url(r.json()["request_uri"]))
            if 'name="password"' in browser.page:
                response = browser.login(citizen)
            else:
                response = browser.post("/consent", {"decision": "allow"})
            claims = jwt.decode(client.redeem(callback_params(response)["code"]).json()[
                "id_token"], options={"verify_signature": False})
            subs[client_id] = claims["sub"]
            client.close()
    finally:
        browser.close()
    assert subs["dvc-hanoi"] == citizen.account_id  # public
    assert subs["dvc-hcm"] != citizen.account_id and len(subs["dvc-hcm"]) == 43  # pairwise


def decrypt(token: str, private_jwk: dict[str, object], alg: str) -> tuple[dict[str, str], str]:
    """Decrypt with node's jose (panva): ours is the encrypting side only."""
    done = subprocess.run(["node", str(NODE_DIR / "decrypt_jwe.mjs")], cwd=NODE_DIR,
                          input=json.dumps({"token": token, "jwk": private_jwk, "alg": alg}),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["header"], out["plaintext"]


def test_encrypted_ps256_id_token_and_eddsa_userinfo(idp: IdentityServer) -> None:
    """Decrypted with node jose, signatures verified with pyjwt."""
    citizen = idp.citizen("079084000804", totp=False, level2=False)
    client = RawClient(idp, "dvc-jwe")
    browser, params = logged_in_browser(idp, client, citizen)
    browser.close()
    tokens = client.redeem(params["code"]).json()
    keys = jwks(idp)
    jwe_header, nested = decrypt(tokens["id_token"], ECAlgorithm.to_jwk(ENC_EC, as_dict=True),
                                 "ECDH-ES+A256KW")
    assert jwe_header["alg"] == "ECDH-ES+A256KW" and jwe_header["cty"] == "JWT"
    header = jwt.get_unverified_header(nested)
    assert header["alg"] == "PS256"
    claims = jwt.decode(nested, keys[header["kid"]], algorithms=["PS256"], audience="dvc-jwe",
                        issuer=idp.issuer)
    assert claims["acr"] == "LoA1" and claims["amr"] == ["pwd"] and "auth_time" in claims
    info = client.userinfo(tokens["access_token"])
    assert info.headers["content-type"].startswith("application/jwt")
    rsa_private = {k: v for k, v in RSAAlgorithm.to_jwk(ENC_RSA, as_dict=True).items()
                   if k != "key_ops"}
    jwe_header, signed = decrypt(info.text, rsa_private, "RSA-OAEP-256")
    assert jwe_header["enc"] == "A256GCM"
    header = jwt.get_unverified_header(signed)
    assert header["alg"] == "EdDSA"
    body = jwt.decode(signed, keys[header["kid"]], algorithms=["EdDSA"], audience="dvc-jwe",
                      issuer=idp.issuer)
    assert body["sub"] == claims["sub"] and body["SoDinhDanh"] == "079084000804"
    client.close()


def test_introspection_by_owner_and_resource_server_only(idp: IdentityServer,
                                                         hcm: RawClient) -> None:
    citizen = idp.citizen("079084000805", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    browser.close()
    tokens = hcm.redeem(params["code"]).json()
    mine = hcm.post("/introspect", {"token": tokens["access_token"], **hcm.auth()}, dpop=None)
    info = mine.json()
    assert info["active"] and info["client_id"] == "dvc-hcm" and info["token_type"] == "DPoP"
    assert info["cnf"]["jkt"] == hcm.dpop.jkt and info["acr"] == "LoA1"
    other = RawClient(idp, "dvc-hanoi")
    try:
        foreign = other.post("/introspect", {"token": tokens["access_token"], **other.auth()},
                             dpop=None)
        assert foreign.json() == {"active": False}
    finally:
        other.close()
    revoked = hcm.post("/revoke", {"token": tokens["refresh_token"], **hcm.auth()}, dpop=None)
    assert revoked.status_code == 200
    gone = hcm.post("/introspect", {"token": tokens["access_token"], **hcm.auth()}, dpop=None)
    assert gone.json() == {"active": False}


def test_lockout_and_backoff_per_account_are_audited(
        db_and_idp: tuple[object, IdentityServer], hcm: RawClient) -> None:
    db, idp = db_and_idp
    citizen = idp.citizen("079084000806", totp=False, level2=False)
    browser = Browser(idp.issuer)
    try:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        for _ in range(2):  # free attempts
            browser.post("/login", {"identifier": citizen.identifier, "password": "sai-mat-khau"})
            assert "không đúng" in browser.page
        browser.post("/login", {"identifier": citizen.identifier, "password": "sai-mat-khau"})
        assert "không đúng" in browser.page
        # Now blocked (back-off): even the right password is refused, with a delay given.
        browser.post("/login", {"identifier": citizen.identifier, "password": citizen.password})
        assert re.search(r"thử lại sau \d+ giây", browser.page)
    finally:
        browser.close()
    with db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(AuditEventRow.action, AuditEventRow.outcome,
                                AuditEventRow.details)).all()
    mine = [(a, o, json.loads(d)) for a, o, d in rows
            if json.loads(d).get("account_id") == citizen.account_id]
    assert [a for a, _, _ in mine].count("login.password") >= 4
    assert any(d.get("remote") == "127.0.0.1" for _, _, d in mine)


def test_lockout_per_source_address(db_and_idp: tuple[object, IdentityServer],
                                    hcm: RawClient) -> None:
    """Many accounts tried from one address: the address is blocked too (password spraying)."""
    db, idp = db_and_idp
    policy = idp.provider.settings.throttle_address
    assert isinstance(policy, ThrottlePolicy) and policy.free_attempts == 20
    browser = Browser(idp.issuer)
    try:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        for i in range(policy.free_attempts + 1):
            browser.post("/login", {"identifier": f"0790840{i:05d}", "password": "123456789a"})
        assert re.search(r"thử lại sau \d+ giây", browser.page)
    finally:
        browser.close()
        with idp.provider.core.store.transaction() as tx:  # let the other tests log in again
            tx.set_throttle("address:127.0.0.1", ThrottleState())
    with db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(AuditEventRow.action, AuditEventRow.reason,
                                AuditEventRow.details)).all()
    throttled = [json.loads(d) for a, r, d in rows if a == "login.password" and r == "THROTTLED"]
    assert {"key": "address", "remote": "127.0.0.1"}.items() <= throttled[-1].items()


def test_step_up_with_the_app(idp: IdentityServer, hcm: RawClient) -> None:
    """A password session asked for LoA2 is raised by approving in the app; same sid."""
    citizen: Citizen = idp.citizen("079084000807", totp=False)
    phone = CitizenApp(idp.issuer)
    with httpx.Client() as http:
        phone.enrol(http, idp.provider.devices.create_enrolment(citizen.account_id,
                                                                dt.datetime.now(dt.UTC)))
        browser, params = logged_in_browser(idp, hcm, citizen)
        try:
            before = jwt.decode(hcm.redeem(params["code"]).json()["id_token"],
                                options={"verify_signature": False})
            assert before["acr"] == "LoA1"
            r = hcm.par(acr_values="LoA2")
            browser.go(hcm.authorize_url(r.json()["request_uri"]))
            assert "Xác thực bước hai" in browser.page
            approval_id, number = browser.qr()
            assert phone.approve(http, approval_id, code=number).json()["status"] == "approved"
            params = callback_params(browser.post("/login/qr", {}))
            after = jwt.decode(hcm.redeem(params["code"]).json()["id_token"],
                               options={"verify_signature": False})
        finally:
            browser.close()
    assert after["acr"] == "LoA2" and after["sid"] == before["sid"]
    assert set(after["amr"]) == {"pwd", "swk", "pin", "mfa"}


def test_session_limits() -> None:
    t0 = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    session = ProviderSession(key_hash="k", sid="s", account_id="a", created_at=t0,
                              last_seen_at=t0, auth_time=t0, level=AssuranceLevel.LOA2,
                              methods=(Amr.PWD, Amr.OTP))
    day, hour = dt.timedelta(hours=24), dt.timedelta(hours=1)
    assert session.alive(t0 + dt.timedelta(minutes=59), max_age=day, idle=hour)
    assert not session.alive(t0 + dt.timedelta(minutes=61), max_age=day, idle=hour)
    busy = dataclasses.replace(session, last_seen_at=t0 + dt.timedelta(hours=23, minutes=59))
    assert busy.alive(t0 + dt.timedelta(hours=23, minutes=59, seconds=30), max_age=day, idle=hour)
    assert not busy.alive(t0 + dt.timedelta(hours=24), max_age=day, idle=hour)


def test_citizen_sees_and_withdraws_consent(idp: IdentityServer, hcm: RawClient) -> None:
    citizen = idp.citizen("079084000808", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    try:
        tokens = hcm.redeem(params["code"]).json()
        page = browser.go(idp.issuer + "/account")
        assert page.status_code == 200 and "Hệ thống dvc-hcm" in browser.page
        assert "Số định danh cá nhân" in browser.page
        browser.post("/account/consents/withdraw", {"client_id": "dvc-hcm"})
        assert 'id="no-consents"' in browser.page
        assert hcm.userinfo(tokens["access_token"]).status_code == 401
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        assert 'id="consent-allow"' in browser.page  # asked again
    finally:
        browser.close()
    with httpx.Client() as anonymous:
        assert "Hãy đăng nhập" in anonymous.get(idp.issuer + "/account").text
