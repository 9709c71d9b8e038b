"""The citizen app: device enrolment (one active device), approvals signed with the device key,
and CIBA poll mode (the flow a remote-signature approval uses)."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import jwt as pyjwt

from tests.server.identity.harness import Citizen, CitizenApp, IdentityServer
from tests.server.identity.raw import RawClient

CIBA = "urn:openid:params:grant-type:ciba"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def enrolled(idp: IdentityServer, citizen: Citizen, http: httpx.Client) -> CitizenApp:
    app = CitizenApp(idp.issuer)
    app.enrol(http, idp.provider.devices.create_enrolment(citizen.account_id, now()))
    return app


def test_a_new_device_revokes_the_old_one(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000601", totp=False)
    with httpx.Client() as http:
        old = enrolled(idp, citizen, http)
        new = enrolled(idp, citizen, http)
        devices = idp.admin.devices(citizen.account_id)
        assert [(d.device_id, d.active) for d in devices] == [(old.device_id, False),
                                                             (new.device_id, True)]
        # The old phone can no longer approve anything.
        pending = http.get(f"{idp.issuer}/app/v1/approvals", headers={
            "authorization": "Device " + old.statement("vnid-device+jwt", {
                "htm": "GET", "htu": f"{idp.issuer}/app/v1/approvals"})})
        assert pending.status_code == 401


def test_enrolment_code_is_single_use_and_needs_proof_of_possession(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000602", totp=False)
    code = idp.provider.devices.create_enrolment(citizen.account_id, now())
    app, thief = CitizenApp(idp.issuer), CitizenApp(idp.issuer)
    with httpx.Client() as http:
        # A proof made with another key than the one registered is refused.
        proof = thief.statement("vnid-enrolment+jwt", {"enrolment_code": code}, kid="new")
        r = http.post(f"{idp.issuer}/app/v1/devices",
                      json={"enrolment_code": code, "jwk": app.jwk, "proof": proof})
        assert r.status_code == 401
        app.enrol(http, code)
        r = http.post(f"{idp.issuer}/app/v1/devices", json={
            "enrolment_code": code, "jwk": thief.jwk,
            "proof": thief.statement("vnid-enrolment+jwt", {"enrolment_code": code},
                                     kid="new")})
        assert r.status_code == 401


def test_ciba_poll_mode_with_device_approval(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000603", totp=False)
    client = RawClient(idp, "ciba-signer")
    try:
        with httpx.Client() as http:
            app = enrolled(idp, citizen, http)
            r = client.post("/bc-authorize", {
                "scope": "openid national_id", "login_hint": citizen.identifier,
                "binding_message": "Ký hồ sơ 2.000815.000.00.00.H29 #A1B2", "acr_values": "LoA2",
                **client.auth()}, dpop=None)
            assert r.status_code == 200, r.text
            req = r.json()
            assert req["interval"] >= 1 and req["expires_in"] > 0

            def poll() -> httpx.Response:
                return client.post("/token", {"grant_type": CIBA,
                                              "auth_req_id": req["auth_req_id"],
                                              **client.auth()})
            assert poll().json()["error"] == "authorization_pending"
            assert poll().json()["error"] == "slow_down"  # polled faster than the interval
            listed = http.get(f"{idp.issuer}/app/v1/approvals", headers={
                "authorization": "Device " + app.statement("vnid-device+jwt", {
                    "htm": "GET", "htu": f"{idp.issuer}/app/v1/approvals"})})
            assert listed.status_code == 200, listed.text
            (pending,) = listed.json()
            assert pending["binding_message"].startswith("Ký hồ sơ")
            assert app.approve(http, pending["approval"], uv=("face",)).json() == {
                "status": "approved"}
            time.sleep(1.1)
            done = poll()
            assert done.status_code == 200, done.text
            tokens = done.json()
            claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
            assert claims["acr"] == "LoA2" and set(claims["amr"]) == {"swk", "face", "mfa"}
            again = poll()
            assert again.json()["error"] == "invalid_grant"
    finally:
        client.close()


def test_ciba_denied_by_the_person(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000604", totp=False)
    client = RawClient(idp, "ciba-signer")
    try:
        with httpx.Client() as http:
            app = enrolled(idp, citizen, http)
            req = client.post("/bc-authorize", {
                "scope": "openid", "login_hint": citizen.identifier,
                "binding_message": "Ký văn bản", **client.auth()}, dpop=None).json()
            listed = http.get(f"{idp.issuer}/app/v1/approvals", headers={
                "authorization": "Device " + app.statement("vnid-device+jwt", {
                    "htm": "GET", "htu": f"{idp.issuer}/app/v1/approvals"})}).json()
            assert len(listed) == 1
            assert app.approve(http, listed[0]["approval"], decision="deny").json() == {
                "status": "denied"}
            r = client.post("/token", {"grant_type": CIBA, "auth_req_id": req["auth_req_id"],
                                       **client.auth()})
            assert r.json()["error"] == "access_denied"
    finally:
        client.close()


def test_replayed_device_statement_is_refused(idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000605", totp=False)
    client = RawClient(idp, "ciba-signer")
    try:
        with httpx.Client() as http:
            app = enrolled(idp, citizen, http)
            client.post("/bc-authorize", {
                "scope": "openid", "login_hint": citizen.identifier,
                "binding_message": "Ký văn bản", **client.auth()}, dpop=None)
            headers = {"authorization": "Device " + app.statement("vnid-device+jwt", {
                "htm": "GET", "htu": f"{idp.issuer}/app/v1/approvals"})}
            assert http.get(f"{idp.issuer}/app/v1/approvals", headers=headers).status_code == 200
            assert http.get(f"{idp.issuer}/app/v1/approvals", headers=headers).status_code == 401
    finally:
        client.close()
