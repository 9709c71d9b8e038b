"""A real server with the identity provider, on loopback, for the identity tests.

The server runs on its own event loop in a thread, so tests drive it like any outside party does:
synchronous HTTP (httpx, the relying-party library), a browser, node processes, gRPC channels.
Registered clients, accounts and a simulated citizen app holding a real device key are set up here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pyotp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from server.app import Application
from server.config import Config
from server.identity.rp_transport import HttpxTransport
from tests.support.pki import TestPki
from tests.support.server import free_port, server_config_dict
from vnid.account_admin import AccountAdmin
from vnid.accounts import AccountKind, EvidenceType, ProofingMethod, ProofingRecord
from vnid.oauth2.clients import hash_secret
from vnid.oidc.provider import OpenIDProvider
from vnid.personal_id import Sex
from vnid.rp import RelyingParty, RpSettings

CLASSIC_SECRET = "classic-client-secret-" + "x" * 24
PASSWORD = "Mat-khau-rat-kho-doan-2025"


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str, use: str = "sig") -> dict[str, str]:
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"], "kid": kid, "use": use,
            "alg": "ES256"}


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class RegisteredClient:
    client_id: str
    key: ec.EllipticCurvePrivateKey
    kid: str
    redirect_uri: str
    logout_uri: str = ""


@dataclass
class CitizenApp:
    """The citizen's phone: a P-256 key registered as the account's device."""

    issuer: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=ec_key)
    device_id: str = ""

    @property
    def jwk(self) -> dict[str, str]:
        j = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"kty": "EC", "crv": "P-256", "x": j["x"], "y": j["y"]}

    def statement(self, typ: str, claims: dict[str, Any], *, kid: str | None = None) -> str:
        body = {"aud": self.issuer, "iat": int(time.time()), "jti": secrets.token_urlsafe(12),
                **claims}
        return jwt.encode(body, self.key, algorithm="ES256",
                          headers={"typ": typ, "kid": kid or self.device_id})

    def enrol(self, http: httpx.Client, code: str) -> str:
        proof = self.statement("vnid-enrolment+jwt", {"enrolment_code": code}, kid="new")
        r = http.post(f"{self.issuer}/app/v1/devices",
                      json={"enrolment_code": code, "jwk": self.jwk, "label": "test phone",
                            "proof": proof})
        assert r.status_code == 200, r.text
        self.device_id = r.json()["device_id"]
        return self.device_id

    def approve(self, http: httpx.Client, approval_id: str, *, code: str = "",
                decision: str = "approve", uv: tuple[str, ...] = ("pin",)) -> httpx.Response:
        info = http.get(f"{self.issuer}/app/v1/approvals/{approval_id}")
        assert info.status_code == 200, info.text
        challenge = info.json()["challenge"]
        statement = self.statement("vnid-approval+jwt", {
            "approval": approval_id, "challenge": challenge, "decision": decision,
            "code": code, "uv": list(uv)})
        return http.post(f"{self.issuer}/app/v1/approvals/{approval_id}",
                         json={"statement": statement})


class IdentityServer:
    """``Application`` with the identity module on its own thread and loop."""

    def __init__(self, pki: TestPki, directory: Path, database_url: str, *,
                 extra_identity: dict[str, Any] | None = None,
                 clients: Callable[[IdentityServer], list[dict[str, Any]]] | None = None,
                 callers: list[dict[str, Any]] | None = None,
                 clock: Callable[[], dt.datetime] | None = None,
                 sections: dict[str, Any] | None = None,
                 extra_server: dict[str, Any] | None = None,
                 extra_config: dict[str, Any] | None = None) -> None:
        self.http_port = free_port()
        self.clock = clock
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.issuer = self.base + "/id"
        self.registered: dict[str, RegisteredClient] = {}
        self._transports: list[HttpxTransport] = []
        client_meta = clients(self) if clients is not None else self.default_clients()
        identity = {"issuer": self.issuer, "argon2_time_cost": 1, "argon2_memory_kib": 1024,
                    "argon2_parallelism": 1, "worker_interval_seconds": 0.2,
                    "clients": client_meta, **(extra_identity or {})}
        extra: dict[str, Any] = {"identity": identity}
        extra["server"] = {"public_url": self.base, **(extra_server or {})}
        extra.update(extra_config or {})
        if callers is not None:
            extra["auth"] = {"callers": callers, "plaintext_caller": "000.00.00.G22"}
        extra.update(sections or {})  # other modules' sections (payments, documents)
        data = server_config_dict(pki, directory, database_url, http_port=self.http_port,
                                  extra=extra)
        self.config = Config.from_config(data)
        self.app: Application | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="identity-server")
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ clients
    def client(self, client_id: str, *, redirect: str = "http://127.0.0.1:9/cb",
               logout_uri: str = "") -> RegisteredClient:
        key = ec_key()
        registered = RegisteredClient(client_id, key, f"{client_id}-k1", redirect, logout_uri)
        self.registered[client_id] = registered
        return registered

    def fapi_metadata(self, c: RegisteredClient, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "client_id": c.client_id, "client_name": f"Hệ thống {c.client_id}",
            "profile": "fapi2", "redirect_uris": [c.redirect_uri],
            "post_logout_redirect_uris": [c.redirect_uri + "/logged-out"],
            "jwks": {"keys": [public_jwk(c.key, c.kid)]},
            "scope": "openid profile national_id offline_access",
            "claim_profile": "national_portal",
        }
        if c.logout_uri:
            meta["backchannel_logout_uri"] = c.logout_uri
        meta.update(extra)
        return meta

    def default_clients(self) -> list[dict[str, Any]]:
        hcm = self.client("dvc-hcm")
        hanoi = self.client("dvc-hanoi")
        svc = self.client("svc-hcm")
        signer = self.client("ciba-signer")
        return [
            self.fapi_metadata(signer, client_name="Dịch vụ ký số từ xa", require_consent=False,
                               grant_types=["urn:openid:params:grant-type:ciba"]),
            self.fapi_metadata(hcm, agency_code="000.00.00.H29", province_code="79"),
            self.fapi_metadata(hanoi, subject_type="public", claim_profile="standard"),
            {"client_id": "classic", "profile": "oidc", "redirect_uris": ["http://127.0.0.1:9/cb"],
             "token_endpoint_auth_method": "client_secret_basic",
             "client_secret_sha256": hash_secret(CLASSIC_SECRET), "subject_type": "public"},
            {"client_id": "svc-hcm", "profile": "service", "agency_code": "000.00.00.H29",
             "province_code": "79", "service_scopes": ["identity.read"],
             "jwks": {"keys": [public_jwk(svc.key, svc.kid)]}},
        ]

    # ------------------------------------------------------------------ lifecycle
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.app = Application(self.config, clock=self.clock)
            self.loop.run_until_complete(self.app.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def __enter__(self) -> IdentityServer:
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        for transport in self._transports:
            transport.close()
        assert self.app is not None
        future = asyncio.run_coroutine_threadsafe(self.app.stop(1.0), self.loop)
        future.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    @property
    def grpc_target(self) -> str:
        assert self.app is not None
        return f"localhost:{self.app.grpc_port}"

    @property
    def provider(self) -> OpenIDProvider:
        assert self.app is not None
        provider: OpenIDProvider = self.app.context.registry["identity_provider"]
        return provider

    @property
    def admin(self) -> AccountAdmin:
        return AccountAdmin(self.provider.core)

    # ------------------------------------------------------------------ people
    def citizen(self, identifier: str, *, name: str = "Nguyễn Văn An",
                born: dt.date = dt.date(1984, 5, 17), sex: Sex = Sex.MALE, level2: bool = True,
                totp: bool = True, password: str = PASSWORD) -> Citizen:
        now = dt.datetime.now(dt.UTC)
        admin = self.admin
        account = admin.create(kind=AccountKind.CITIZEN, identifier=identifier, full_name=name,
                               now=now, date_of_birth=born, sex=sex, password=password,
                               province_code="79")
        if level2:
            account = admin.record_proofing(account.account_id, ProofingRecord(
                evidence_type=EvidenceType.CHIP_ID_CARD,
                method=ProofingMethod.IN_PERSON_CHIP_AND_FACE, place="Công an phường Bến Thành",
                officer="CA-0042", proofed_at=now - dt.timedelta(days=3),
                evidence_valid_until=dt.date(2040, 5, 16)), now)
        secret = admin.enrol_totp(account.account_id, now)[0] if totp else ""
        return Citizen(account.account_id, identifier, password, secret, name)

    def rp(self, client_id: str, **settings: Any) -> RelyingParty:
        c = self.registered[client_id]
        rp_settings = RpSettings(issuer=self.issuer, client_id=client_id,
                                 redirect_uri=c.redirect_uri, signing_kid=c.kid,
                                 post_logout_redirect_uri=c.redirect_uri + "/logged-out",
                                 **settings)
        transport = HttpxTransport()
        self._transports.append(transport)
        return RelyingParty(rp_settings, transport, c.key)


@dataclass
class Citizen:
    account_id: str
    identifier: str
    password: str
    totp_secret: str
    name: str

    last_step: int = 0

    def otp(self) -> str:
        """A code the provider has not seen yet (it accepts one step ahead; each step once)."""
        while True:
            step = max(int(time.time()) // 30, self.last_step + 1)
            if step <= int(time.time()) // 30 + 1:
                self.last_step = step
                return pyotp.TOTP(self.totp_secret).at(step * 30)
            time.sleep(0.5)


# ---------------------------------------------------------------------- a browser without JS


class Browser:
    """Follows the provider's pages with plain HTTP and forms (cookies kept per client)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.http = httpx.Client(follow_redirects=False, timeout=10)
        self.page = ""

    def close(self) -> None:
        self.http.close()

    def go(self, url: str) -> httpx.Response:
        response = self.http.get(url)
        return self._follow(response)

    def _follow(self, response: httpx.Response) -> httpx.Response:
        while response.status_code in (302, 303) and \
                response.headers["location"].startswith(self.issuer):
            response = self.http.get(response.headers["location"])
        self.page = response.text
        return response

    def csrf(self) -> str:
        m = re.search(r'name="csrf" value="([^"]+)"', self.page)
        assert m, self.page[:500]
        return m.group(1)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        response = self.http.post(self.issuer + path, data={"csrf": self.csrf(), **data})
        return self._follow(response)

    def login(self, citizen: Citizen, *, otp: bool | None = None) -> httpx.Response:
        r = self.post("/login", {"identifier": citizen.identifier, "password": citizen.password})
        if 'name="otp"' in self.page and otp is not False:
            r = self.post("/login/otp", {"otp": citizen.otp()})
        if 'id="consent-allow"' in self.page:
            r = self.post("/consent", {"decision": "allow"})
        return r

    def qr(self) -> tuple[str, str]:
        """(approval id, number) of the QR shown on the page."""
        payload = re.search(r'id="qr-payload">([^<]+)<', self.page)
        number = re.search(r'id="qr-number">(\d+)<', self.page)
        assert payload and number, self.page[:500]
        query = dict(parse_qsl(urlsplit(payload.group(1).replace("&amp;", "&")).query))
        return query["id"], number.group(1)


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()
    return verifier, challenge


def b64json(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
