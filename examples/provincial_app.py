"""A tiny provincial web application that signs citizens in through the identity provider with the
relying-party library (:mod:`vnid.rp`): FAPI 2.0 login (PAR, PKCE, DPoP, private_key_jwt), the
national-portal claims, RP-initiated logout, and back-channel logout.

Run it against the demo server (``scripts/dev.sh serve``), after registering it as a client and
creating a citizen to log in with::

    .venv/bin/vnegov identity client add-example --client-id dvc-demo \\
        --redirect-uri http://127.0.0.1:8001/callback --key-out data/dvc-demo.key.pem
    .venv/bin/vnegov identity account create --kind citizen --identifier 079084000123 \\
        --name "Nguyễn Văn An" --born 1984-05-17 --sex male --password-prompt
    .venv/bin/vnegov identity account totp <account id>     # for level 2: scan the otpauth URI
    .venv/bin/python examples/provincial_app.py --issuer http://127.0.0.1:8080/id \\
        --client-id dvc-demo --key data/dvc-demo.key.pem --port 8001

then open http://127.0.0.1:8001/ (the server caches stored clients for 30 s). Sessions live in
memory: this is an example, not a product.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from server.identity.rp_transport import HttpxTransport
from vnid.assurance import AssuranceLevel
from vnid.rp import (
    BackchannelLogoutReceiver,
    JwksCache,
    PendingLogin,
    RelyingParty,
    RpSettings,
    TokenInvalid,
    TokenSet,
)


@dataclass
class AppState:
    rp: RelyingParty
    receiver: BackchannelLogoutReceiver
    title: str
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    pending: dict[str, PendingLogin] = field(default_factory=dict)
    sessions: dict[str, tuple[TokenSet, dict[str, Any]]] = field(default_factory=dict)
    seen_logout_jti: dict[str, dt.datetime] = field(default_factory=dict)
    logouts: list[str] = field(default_factory=list)  # OP session ids logged out by the OP
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cookie(self) -> str:
        """Cookies do not tell ports apart: each application on one host needs its own name."""
        return "rp_" + "".join(c if c.isalnum() else "_" for c in self.rp.settings.client_id)

    def end_op_session(self, sid: str, sub: str) -> int:
        with self.lock:
            gone = [k for k, (tokens, _) in self.sessions.items()
                    if (sid and tokens.id_claims.get("sid") == sid)
                    or (not sid and tokens.id_claims.get("sub") == sub)]
            for key in gone:
                del self.sessions[key]
            self.logouts.append(sid or sub)
        return len(gone)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html lang="vi"><head><meta charset="utf-8">
<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>
{body}</main></body></html>""", headers={"cache-control": "no-store"})


def build_app(state: AppState) -> Starlette:
    rp = state.rp

    async def home(request: Request) -> Response:
        entry = state.sessions.get(request.cookies.get(state.cookie, ""))
        if entry is None:
            return _page(state.title, '<p id="status">Chưa đăng nhập.</p>'
                         '<p><a id="login" href="/login">Đăng nhập bằng tài khoản định danh</a>'
                         ' · <a id="login-loa2" href="/login?level=2">Đăng nhập mức 2</a></p>')
        tokens, profile = entry
        rows = "".join(f"<dt>{html.escape(k)}</dt><dd id='claim-{html.escape(k)}'>"
                       f"{html.escape(str(v))}</dd>" for k, v in sorted(profile.items()))
        return _page(state.title, f'<p id="status">Đã đăng nhập (mức '
                     f'{html.escape(str(tokens.id_claims.get("acr")))}).</p><dl>{rows}</dl>'
                     '<p><a id="logout" href="/logout">Đăng xuất</a></p>')

    def start(level: str) -> tuple[str, PendingLogin]:
        if level == "2":
            return rp.start_login(now=state.clock(), acr_values="LoA2",
                                  min_level=AssuranceLevel.LOA2)
        return rp.start_login(now=state.clock())

    async def login(request: Request) -> Response:
        url, pending = await _thread(start, request.query_params.get("level", ""))
        key = secrets.token_urlsafe(24)
        state.pending[key] = pending
        response = RedirectResponse(url, 303)
        response.set_cookie(state.cookie + "_pending", key, httponly=True, samesite="lax",
                            max_age=600)
        return response

    async def callback(request: Request) -> Response:
        pending = state.pending.pop(request.cookies.get(state.cookie + "_pending", ""), None)
        if pending is None:
            return _page("Lỗi", "<p>Phiên đăng nhập không hợp lệ.</p>")
        params = dict(request.query_params)

        def finish() -> tuple[TokenSet, dict[str, Any]]:
            now = state.clock()
            tokens = rp.finish_login(params, pending, now=now)
            return tokens, rp.userinfo(tokens, now=now)
        try:
            tokens, profile = await _thread(finish)
        except Exception as exc:  # an example shows the failure instead of a stack trace
            return _page("Lỗi đăng nhập", f"<p id='error'>{html.escape(str(exc))}</p>")
        key = secrets.token_urlsafe(24)
        with state.lock:
            state.sessions[key] = (tokens, profile)
        response = RedirectResponse("/", 303)
        response.set_cookie(state.cookie, key, httponly=True, samesite="lax")
        response.delete_cookie(state.cookie + "_pending")
        return response

    async def logout(request: Request) -> Response:
        key = request.cookies.get(state.cookie, "")
        entry = state.sessions.pop(key, None)
        if entry is None:
            return RedirectResponse("/", 303)
        response = RedirectResponse(rp.logout_url(entry[0], state=secrets.token_urlsafe(8)), 303)
        response.delete_cookie(state.cookie)
        return response

    async def logged_out(request: Request) -> Response:
        return _page(state.title, '<p id="status">Đã đăng xuất.</p><p><a href="/">Trang chủ</a></p>')

    async def backchannel(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("logout_token", ""))
        try:
            result = await _thread(state.receiver.validate, token, now=state.clock())
        except TokenInvalid:
            return Response(status_code=400, headers={"cache-control": "no-store"})
        state.end_op_session(result.sid, result.sub)
        return Response(status_code=200, headers={"cache-control": "no-store"})

    return Starlette(routes=[
        Route("/", home), Route("/login", login), Route("/callback", callback),
        Route("/logout", logout), Route("/callback/logged-out", logged_out),
        Route("/backchannel-logout", backchannel, methods=["POST"]),
    ])


async def _thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


def make_state(*, issuer: str, client_id: str, kid: str, key_pem: bytes, base_url: str,
               title: str) -> AppState:
    key = serialization.load_pem_private_key(key_pem, None)
    settings = RpSettings(issuer=issuer, client_id=client_id, redirect_uri=base_url + "/callback",
                          signing_kid=kid, scope="openid",
                          post_logout_redirect_uri=base_url + "/callback/logged-out")
    transport = HttpxTransport()
    rp = RelyingParty(settings, transport, key)  # type: ignore[arg-type]
    seen: dict[str, dt.datetime] = {}

    def remember(jti: str, expires: dt.datetime) -> bool:
        known = jti in seen
        seen[jti] = expires
        return known
    receiver = BackchannelLogoutReceiver(issuer=issuer, client_id=client_id,
                                         jwks=JwksCache(transport, rp.metadata["jwks_uri"]),
                                         seen=remember)
    return AppState(rp=rp, receiver=receiver, title=title, seen_logout_jti=seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--kid", default="", help="key id (default: <client-id>-k1)")
    parser.add_argument("--key", required=True, help="the client's private key (PEM, PKCS#8)")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--title", default="Cổng dịch vụ công tỉnh (ví dụ)")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    state = make_state(issuer=args.issuer, client_id=args.client_id,
                       kid=args.kid or f"{args.client_id}-k1", key_pem=Path(args.key).read_bytes(),
                       base_url=base, title=args.title)
    uvicorn.run(build_app(state), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
