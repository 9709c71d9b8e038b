#!/usr/bin/env python3
"""The same full FAPI 2.0 login flow against our provider and against node ``oidc-provider``.

One flow = PAR (private_key_jwt, PKCE S256, DPoP) -> authorize with an existing browser session
(no page shown, the code comes back at once) -> token (private_key_jwt, DPoP) -> userinfo (DPoP).
Both providers require PAR, PKCE, DPoP with server nonces and private_key_jwt, and sign ES256 ID
tokens; the same client (this script: a lean keep-alive HTTP/1.1 client + pyjwt, one DPoP key per
worker, a fresh client assertion and proof per request) drives both, with the same concurrency.
Each provider runs in its own process: ours as ``python -m server serve`` on SQLite (its default
store, every state change committed), oidc-provider 9 with its default in-memory adapter.

    .venv/bin/python benchmarks/identity_login_flow.py [--seconds 20] [--concurrency 16]
        [--workers 2]

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
        self.jkt = b64(hashlib.sha256(json.dumps(self.jwk, sort_keys=True,
                                                 separators=(",", ":")).encode()).digest())
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


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough of the protocol for this benchmark:
    a lean client, so that the providers, not the client, are what is measured."""

    def __init__(self, url: str, cookie: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookie = cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}",
                 f"content-length: {len(body)}"]
        if self.cookie:
            lines.append(f"cookie: {self.cookie}")
        if body:
            lines.append("content-type: application/x-www-form-urlencoded")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                got[name.strip().lower()] = value.strip()
        if got.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self.reader.readexactly(int(got.get("content-length", "0")))
        if got.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, got, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def call(conn: Connection, dpop: Dpop, method: str, url: str, *,
               form: dict[str, str] | None = None, token: str | None = None,
               client: Client | None = None) -> tuple[int, dict[str, str], bytes]:
    for _ in range(3):
        headers = {"dpop": dpop.proof(method, url, token)}
        if token:
            headers["authorization"] = f"DPoP {token}"
        body = b""
        if form is not None:
            data = dict(form)
            if client is not None:
                data.update(client_id=CLIENT_ID, client_assertion_type=JWT_BEARER,
                            client_assertion=client.assertion())
            body = urlencode(data).encode()
        status, headers_in, payload = await conn.request(method, url, headers, body)
        if headers_in.get("dpop-nonce"):
            dpop.nonce = headers_in["dpop-nonce"]
        if status in (400, 401) and b"use_dpop_nonce" in (
                payload + headers_in.get("www-authenticate", "").encode()):
            continue
        return status, headers_in, payload
    return status, headers_in, payload


async def flow(conn: Connection, client: Client, dpop: Dpop, scope: str) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    status, _, body = await call(conn, dpop, "POST", client.endpoints["par"], client=client,
                                 form={
        "response_type": "code", "redirect_uri": REDIRECT, "scope": scope,
        "code_challenge": challenge, "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "dpop_jkt": dpop.jkt})
    assert status == 201, body
    url = client.endpoints["authorize"] + "?" + urlencode(
        {"client_id": CLIENT_ID, "request_uri": json.loads(body)["request_uri"]})
    status, headers, body = await conn.request("GET", url, {})
    while status in (302, 303) and not headers["location"].startswith(REDIRECT):
        status, headers, body = await conn.request(
            "GET", str(httpx.URL(url).join(headers["location"])), {})
    params = dict(parse_qsl(urlsplit(headers["location"]).query))
    assert "code" in params, params
    status, _, body = await call(conn, dpop, "POST", client.endpoints["token"], client=client,
                                 form={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert status == 200, body
    tokens = json.loads(body)
    assert tokens["token_type"] == "DPoP" and tokens["id_token"]
    status, _, body = await call(conn, dpop, "GET", client.endpoints["userinfo"],
                                 token=tokens["access_token"])
    assert status == 200 and json.loads(body)["SoDinhDanh"] == PERSONAL_ID, body


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children, e.g. our worker processes
    (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        try:
            total += cpu_seconds(int(child))
        except OSError:  # exited meanwhile
            pass
    return total


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
    client_cpu: float = 0.0


async def run_round(target: Target, seconds: float, concurrency: int) -> None:
    cookie = "; ".join(f"{c.name}={c.value}" for c in target.cookies.jar)
    conns = [Connection(target.client.issuer, cookie) for _ in range(concurrency)]
    dpops = [Dpop() for _ in range(concurrency)]
    try:
        for conn, d in zip(conns, dpops, strict=True):  # warm-up (also fetches the nonce)
            await flow(conn, target.client, d, target.scope)
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(conn: Connection, d: Dpop) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await flow(conn, target.client, d, target.scope)
                done += 1
        cpu = cpu_seconds(target.proc.pid)
        mine = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(c, d) for c, d in zip(conns, dpops, strict=True)))
        target.seconds += time.perf_counter() - started
        target.cpu += cpu_seconds(target.proc.pid) - cpu
        target.client_cpu += time.process_time() - mine
        target.flows += done
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------------- our provider


HTTP_THREADS: int | None = None  # --http-threads: identity.http_threads of our server
WORKERS = 1  # --workers: server.workers of our server (processes sharing the port)


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
        # One client address drives every flow: the per-address rate limit of the login routes
        # (20 a second) is lifted so that the provider, not the limiter, is measured.
        "limits": {"http": {"login": {"rate_per_second": 0, "burst": 0}}},
        "auth": {"callers": [{"agency_code": "000.00.00.G22", "provinces": ["*"]}],
                 "plaintext_caller": "000.00.00.G22"},
        "identity": {"clients": [{
            "client_id": CLIENT_ID, "profile": "fapi2", "redirect_uris": [REDIRECT],
            "jwks": {"keys": [{**jwk, "kid": "bench-k1", "use": "sig", "alg": "ES256"}]},
            "scope": "openid national_id", "claim_profile": "national_portal",
            "require_consent": False}]},
    }
    if HTTP_THREADS is not None:
        config["identity"]["http_threads"] = HTTP_THREADS  # type: ignore[index]
    if WORKERS > 1:
        config["server"]["workers"] = WORKERS  # type: ignore[index]
    path = tmp / "vnegov.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}
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
    parser.add_argument("--http-threads", type=int, default=None,
                        help="identity.http_threads for our server (default: its own default)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server.workers for our server (worker processes on one host)")
    args = parser.parse_args()
    global HTTP_THREADS, WORKERS
    HTTP_THREADS = args.http_threads
    WORKERS = args.workers
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
              f"flow   {t.client_cpu / t.flows * 1000:5.2f} ms client CPU per flow   "
              f"({t.flows} flows in {t.seconds:.1f} s, concurrency {args.concurrency})")
    cpu_ratio = cpu["oidc-provider"] / cpu["ours"]
    favour = f"{cpu_ratio:.2f}x in our favour" if cpu_ratio >= 1 else \
        f"{1 / cpu_ratio:.2f}x in oidc-provider's favour"
    print(f"{'ratio':>14}: {rate['ours'] / rate['oidc-provider']:8.2f}x flows/s, ours / "
          f"oidc-provider (goal >= 1.0x); server CPU per flow {favour}")
    print("one flow = PAR + authorize with an existing session + token with DPoP + userinfo; "
          f"ours with {WORKERS} worker process(es)")


if __name__ == "__main__":
    main()
