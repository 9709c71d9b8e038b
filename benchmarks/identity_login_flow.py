#!/usr/bin/env python3
"""The same full FAPI 2.0 login flow against our provider and against node ``oidc-provider``.

One flow = PAR (private_key_jwt, PKCE S256, DPoP) -> authorize with an existing browser session
(no page shown, the code comes back at once) -> token (private_key_jwt, DPoP) -> userinfo (DPoP).
Both providers require PAR, PKCE, DPoP with server nonces and private_key_jwt, and sign ES256 ID
tokens; the same client (this script: httpx + pyjwt, one DPoP key per worker, a fresh client
assertion and proof per request) drives both, with the same concurrency, one after the other.
Each provider runs in its own process: ours as ``python -m server serve`` on SQLite (its default
store, every state change committed), oidc-provider 9 with its default in-memory adapter.

    .venv/bin/python benchmarks/identity_login_flow.py [--seconds 20] [--concurrency 16]

Prints flows per second for each and the ratio (goal: ours >= 1.0x), and the server CPU time per
flow (read from /proc), which stays meaningful when other work shares the machine. Rounds
alternate between the two providers so both see the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import tomli_w
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "tests" / "interop" / "node"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ID = "bench"
REDIRECT = "http://127.0.0.1:9/cb"
PERSONAL_ID = "079084000123"
PASSWORD = "Mat-khau-rat-kho-doan-2025"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Client:
    """The one client both providers see."""

    issuer: str
    key: ec.EllipticCurvePrivateKey
    kid: str = "bench-k1"
    endpoints: dict[str, str] = field(default_factory=dict)

    def assertion(self) -> str:
        now = int(time.time())
        return jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": self.issuer, "iat": now,
                           "exp": now + 60, "jti": secrets.token_urlsafe(16)}, self.key,
                          algorithm="ES256", headers={"kid": self.kid})


class Dpop:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwk = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        self.nonce: str | None = None

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims: dict[str, Any] = {"htm": method, "htu": url, "iat": int(time.time()),
                                  "jti": secrets.token_urlsafe(16)}
        if self.nonce:
            claims["nonce"] = self.nonce
        if token:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        return jwt.encode(claims, self.key, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": self.jwk})


async def call(http: httpx.AsyncClient, dpop: Dpop, method: str, url: str, *,
               form: dict[str, str] | None = None, token: str | None = None,
               client: Client | None = None) -> httpx.Response:
    for _ in range(3):
        headers = {"dpop": dpop.proof(method, url, token)}
        if token:
            headers["authorization"] = f"DPoP {token}"
        data = None
        if form is not None:
            data = dict(form)
            if client is not None:
                data.update(client_id=CLIENT_ID, client_assertion_type=JWT_BEARER,
                            client_assertion=client.assertion())
        r = await http.request(method, url, headers=headers, data=data)
        if r.headers.get("dpop-nonce"):
            dpop.nonce = r.headers["dpop-nonce"]
        if r.status_code in (400, 401) and "use_dpop_nonce" in (
                r.text + r.headers.get("www-authenticate", "")):
            continue
        return r
    return r


async def flow(http: httpx.AsyncClient, client: Client, dpop: Dpop, scope: str) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    par = await call(http, dpop, "POST", client.endpoints["par"], client=client, form={
        "response_type": "code", "redirect_uri": REDIRECT, "scope": scope,
        "code_challenge": challenge, "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "dpop_jkt": b64(hashlib.sha256(json.dumps(dpop.jwk, sort_keys=True,
                                                  separators=(",", ":")).encode()).digest())})
    assert par.status_code == 201, par.text
    url = client.endpoints["authorize"] + "?" + urlencode(
        {"client_id": CLIENT_ID, "request_uri": par.json()["request_uri"]})
    r = await http.get(url)
    while r.status_code in (302, 303) and not r.headers["location"].startswith(REDIRECT):
        r = await http.get(httpx.URL(url).join(r.headers["location"]))
    params = dict(parse_qsl(urlsplit(r.headers["location"]).query))
    assert "code" in params, params
    token = await call(http, dpop, "POST", client.endpoints["token"], client=client, form={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "DPoP" and body["id_token"]
    info = await call(http, dpop, "GET", client.endpoints["userinfo"], token=body["access_token"])
    assert info.status_code == 200 and info.json()["SoDinhDanh"] == PERSONAL_ID, info.text


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    name: str
    proc: subprocess.Popen[bytes]
    client: Client
    cookies: httpx.Cookies
    scope: str
    flows: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


async def run_round(target: Target, seconds: float, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(cookies=target.cookies, limits=limits, timeout=30,
                                 follow_redirects=False) as http:
        dpops = [Dpop() for _ in range(concurrency)]
        for d in dpops:  # warm-up: one flow per worker (also fetches the DPoP nonce)
            await flow(http, target.client, d, target.scope)
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(d: Dpop) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await flow(http, target.client, d, target.scope)
                done += 1
        cpu = cpu_seconds(target.proc.pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(d) for d in dpops))
        target.seconds += time.perf_counter() - started
        target.cpu += cpu_seconds(target.proc.pid) - cpu
        target.flows += done


# ---------------------------------------------------------------------- our provider


def start_ours(tmp: Path, key: ec.EllipticCurvePrivateKey) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    config = {
        "data_dir": str(tmp),
        "server": {"grpc_port": free_port(), "http_port": port, "plaintext": True,
                   "public_url": base},
        "storage": {"url": f"sqlite:///{tmp / 'vnegov.db'}"},
        "logging": {"level": "WARNING", "format": "json"},
        "auth": {"callers": [{"agency_code": "000.00.00.G22", "provinces": ["*"]}],
                 "plaintext_caller": "000.00.00.G22"},
        "identity": {"clients": [{
            "client_id": CLIENT_ID, "profile": "fapi2", "redirect_uris": [REDIRECT],
            "jwks": {"keys": [{**jwk, "kid": "bench-k1", "use": "sig", "alg": "ES256"}]},
            "scope": "openid national_id", "claim_profile": "national_portal",
            "require_consent": False}]},
    }
    path = tmp / "vnegov.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "proto")])}
    cli = [sys.executable, "-m", "server", "--config", str(path)]
    subprocess.run([*cli, "migrate"], check=True, env=env, cwd=ROOT, capture_output=True)
    subprocess.run([*cli, "identity", "account", "create", "--kind", "citizen", "--identifier",
                    PERSONAL_ID, "--name", "Nguyễn Văn An", "--born", "1984-05-17", "--sex",
                    "male", "--password-stdin"], input=PASSWORD.encode(), check=True, env=env,
                   cwd=ROOT, capture_output=True)
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen([*cli, "serve"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    wait_http(base + "/healthz", proc)
    return proc, base + "/id"


def login_ours(client: Client) -> httpx.Cookies:
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        dpop = Dpop()
        for _ in range(2):
            par = http.post(client.endpoints["par"], headers={
                "dpop": dpop.proof("POST", client.endpoints["par"])}, data={
                "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256", "client_id": CLIENT_ID,
                "client_assertion_type": JWT_BEARER, "client_assertion": client.assertion()})
            dpop.nonce = par.headers.get("dpop-nonce", dpop.nonce)
            if par.status_code == 201:
                break
        r = http.get(client.endpoints["authorize"] + "?" + urlencode(
            {"client_id": CLIENT_ID, "request_uri": par.json()["request_uri"]}))
        page = http.get(r.headers["location"]).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page[:300]
        r = http.post(client.issuer + "/login", data={"csrf": csrf.group(1),
                                                      "identifier": PERSONAL_ID,
                                                      "password": PASSWORD})
        assert r.headers["location"].startswith(REDIRECT), r.text[:300]
        return http.cookies


# ---------------------------------------------------------------------- oidc-provider


def start_node(tmp: Path, key: ec.EllipticCurvePrivateKey) -> tuple[subprocess.Popen[bytes], str]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        raise SystemExit("node and tests/interop/node/node_modules are required (npm ci)")
    port = free_port()
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk_file = tmp / "client.jwk.json"
    jwk_file.write_text(json.dumps({**jwk, "kid": "bench-k1", "use": "sig", "alg": "ES256"}))
    log = (tmp / "node.log").open("wb")
    proc = subprocess.Popen([node, str(NODE_DIR / "oidc_provider_server.mjs"), str(port),
                             CLIENT_ID, str(jwk_file), REDIRECT], cwd=NODE_DIR,
                            stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline() or b"{}")
    if not line.get("ready"):
        raise SystemExit("oidc-provider did not start; see " + str(tmp / "node.log"))
    return proc, line["issuer"]


def login_node(client: Client) -> httpx.Cookies:
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        dpop = Dpop()
        for _ in range(2):
            par = http.post(client.endpoints["par"], headers={
                "dpop": dpop.proof("POST", client.endpoints["par"])}, data={
                "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid national_id",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256", "client_id": CLIENT_ID,
                "client_assertion_type": JWT_BEARER, "client_assertion": client.assertion()})
            dpop.nonce = par.headers.get("dpop-nonce", dpop.nonce)
            if par.status_code == 201:
                break
        assert par.status_code == 201, par.text
        url = client.endpoints["authorize"] + "?" + urlencode(
            {"client_id": CLIENT_ID, "request_uri": par.json()["request_uri"]})
        r = http.get(url)
        for prompt in ("login", "consent"):
            interaction = httpx.URL(url).join(r.headers["location"])
            http.get(interaction)
            r = http.post(interaction, data={"prompt": prompt, "login": "acc-1",
                                             "password": "x"})
            while r.status_code in (302, 303) and \
                    not r.headers["location"].startswith(REDIRECT) and \
                    "/interaction/" not in r.headers["location"]:
                r = http.get(httpx.URL(url).join(r.headers["location"]))
            if r.headers["location"].startswith(REDIRECT):
                break
        assert r.headers["location"].startswith(REDIRECT), r.headers["location"]
        return http.cookies


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def discover(issuer: str, key: ec.EllipticCurvePrivateKey) -> Client:
    meta = httpx.get(issuer + "/.well-known/openid-configuration").json()
    return Client(issuer, key, endpoints={
        "par": meta["pushed_authorization_request_endpoint"],
        "authorize": meta["authorization_endpoint"], "token": meta["token_endpoint"],
        "userinfo": meta["userinfo_endpoint"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measuring time per provider, split into alternating rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory(prefix="vnid-bench-") as tmp:
        targets: list[Target] = []
        try:
            for name, start, login, scope in (
                    ("ours", start_ours, login_ours, "openid"),
                    ("oidc-provider", start_node, login_node, "openid national_id")):
                work = Path(tmp) / name
                work.mkdir()
                proc, issuer = start(work, key)
                targets.append(Target(name, proc, Client(issuer, key), httpx.Cookies(), scope))
                client = discover(issuer, key)
                targets[-1].client = client
                targets[-1].cookies = login(client)
            # Alternate short rounds so that both see the same machine (other load included).
            for _ in range(args.rounds):
                for target in targets:
                    asyncio.run(run_round(target, args.seconds / args.rounds, args.concurrency))
        finally:
            for target in targets:
                target.proc.terminate()
                target.proc.wait(30)
    rate = {t.name: t.flows / t.seconds for t in targets}
    cpu = {t.name: t.cpu / t.flows * 1000 for t in targets}
    for t in targets:
        print(f"{t.name:>14}: {rate[t.name]:8.1f} flows/s   {cpu[t.name]:6.2f} ms server CPU per "
              f"flow   ({t.flows} flows in {t.seconds:.1f} s, concurrency {args.concurrency})")
    print(f"{'ratio':>14}: {rate['ours'] / rate['oidc-provider']:8.2f}x flows/s, ours / "
          f"oidc-provider (goal >= 1.0x); server CPU per flow "
          f"{cpu['oidc-provider'] / cpu['ours']:.2f}x in our favour")
    print("one flow = PAR + authorize with an existing session + token with DPoP + userinfo")


if __name__ == "__main__":
    main()
