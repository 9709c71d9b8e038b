"""HTTP front of the identity provider: protocol endpoints, the pages people use, and the citizen
app's API. Everything is a thin conversion between Starlette and :mod:`vnid`. Work that may block
(argon2 password checks, a database writer that must wait) runs on the provider's threads; on SQLite
the protocol endpoints and the authorization endpoint first try the request on the event loop, which
never waits there (see ``IdentityConfig.http_threads``).

Cookies: ``vnid_session`` (the provider session, 24 h at most) and ``vnid_interaction`` (a login in
progress), plus ``vnid_device`` (device cookie: the accounts that logged in from this browser, so the
per-address login limit spares them), all ``HttpOnly``, ``SameSite=Lax``, scoped to the issuer's
path, and ``Secure`` when the issuer is https. Pages are sent with a strict
Content-Security-Policy (no inline script).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request as StarletteRequest
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from server.http.app import DirectRoute
from server.http.client import client_address
from server.identity.store import SqlStore, WouldBlock
from server.identity.texts import language_for, message, texts
from server.modules import AppContext
from vnid.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    RateLimited,
    VnidError,
)
from vnid.oauth2.errors import InvalidRequest, OAuthError
from vnid.oauth2.http import Request, parse_params
from vnid.oauth2.http import Response as OAuthResponse
from vnid.oidc.core import Outcome
from vnid.oidc.provider import OpenIDProvider
from vnid.oidc.self_service import SelfService

__all__ = ["IdentityHttp"]

SESSION_COOKIE = "vnid_session"
INTERACTION_COOKIE = "vnid_interaction"
# Marks this browser as a known device of the accounts that logged in from it (OWASP device
# cookies): the per-address login limit does not apply to them (vnid/authn/device_cookies.py).
DEVICE_COOKIE = "vnid_device"
_HERE = Path(__file__).parent
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self' {form}; frame-ancestors 'none'; base-uri 'none'")
_MAX_BODY = 64 * 1024
T = TypeVar("T")


class IdentityHttp:
    def __init__(self, ctx: AppContext, provider: OpenIDProvider, *,
                 on_logout: Callable[[], None] = lambda: None, threads: int = -1,
                 store: SqlStore | None = None) -> None:
        self.ctx = ctx
        # Protocol endpoints on the event loop, on threads, or tried on the event loop and
        # moved to a thread when they would wait for the database (IdentityConfig.http_threads).
        self.inline = threads == 0
        self.attempt = store.attempt if threads < 0 and store is not None and \
            store.db.is_sqlite else None
        self.executor = ThreadPoolExecutor(max_workers=threads if threads > 0 else 4,
                                           thread_name_prefix="identity-http")
        self.provider = provider
        self.on_logout = on_logout
        issuer = provider.issuer
        self.prefix = issuer.split("://", 1)[1].partition("/")[2]
        self.prefix = "/" + self.prefix if self.prefix else ""
        self.secure = issuer.startswith("https://")
        self.self_service = SelfService(provider.core)
        self.jinja = Environment(loader=FileSystemLoader(_HERE / "templates"),
                                 autoescape=select_autoescape(["html"]))
        self._metadata = json.dumps(provider.metadata(), separators=(",", ":")).encode()

    # ------------------------------------------------------------------ plumbing
    def now(self) -> dt.datetime:
        return self.ctx.clock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking work of an endpoint, on the provider's own threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A protocol step: on the event loop when it cannot block there, else on a thread."""
        if self.inline:
            return fn(*args)
        if self.attempt is not None:
            try:
                return self.attempt(fn, *args)
            except WouldBlock:  # nothing was written: the whole step runs again, on a thread
                pass
        return await self.run(fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


    def _api(self, handler: Callable[[Request, dt.datetime], OAuthResponse],
             url: str) -> _ApiEndpoint:
        return _ApiEndpoint(self, handler, url)

    def _page(self, request: StarletteRequest, name: str, context: dict[str, Any],
              status: int = 200, *, lang: str = "") -> Response:
        lang = language_for(str(context.get("ui_locales", "")), lang or
                            request.query_params.get("lang", ""))
        data = dict(context)
        if data.get("qr"):
            qr = data["qr"]
            data["qr_svg"] = segno.make(qr["payload"], error="m").svg_inline(
                scale=4, border=2, omitsize=True)
        data.update(t=texts(lang), lang=lang, prefix=self.prefix,
                    message=message(lang, str(context.get("message", ""))))
        html = self.jinja.get_template(f"{name}.html").render(**data)
        target = str(context.get("form_target", ""))
        form_target = target if target.startswith(("https://", "http://")) and \
            all(c not in target for c in " ;,'\"") else ""
        return Response(html, status, media_type="text/html; charset=utf-8", headers={
            "content-security-policy": _CSP.format(form=form_target).strip(),
            "cache-control": "no-store", "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer"})

    def _cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=self.prefix or "/",
                            secure=self.secure, httponly=True, samesite="lax")

    def _outcome(self, request: StarletteRequest, outcome: Outcome) -> Response:
        settings = self.provider.settings
        if outcome.error is not None:
            response = self._page(request, "error", {
                "error": outcome.error.error, "description": outcome.error.description}, 400)
        elif outcome.page:
            response = self._page(request, outcome.page, outcome.context)
        else:
            response = RedirectResponse(outcome.redirect, 303,
                                        headers={"cache-control": "no-store"})
        if outcome.set_session:
            self._cookie(response, SESSION_COOKIE, outcome.set_session,
                         int(settings.session_max_age.total_seconds()))
        if outcome.clear_session:
            response.delete_cookie(SESSION_COOKIE, path=self.prefix or "/")
            self.on_logout()
        if outcome.set_interaction:
            self._cookie(response, INTERACTION_COOKIE, outcome.set_interaction,
                         int(settings.interaction_lifetime.total_seconds()))
        if outcome.clear_interaction:
            response.delete_cookie(INTERACTION_COOKIE, path=self.prefix or "/")
        if outcome.set_device:
            self._cookie(response, DEVICE_COOKIE, outcome.set_device, int(
                self.provider.core.device_cookies.lifetime.total_seconds()))
        return response

    async def _form(self, request: StarletteRequest) -> dict[str, str]:
        body = await request.body()
        if len(body) > _MAX_BODY:
            raise InvalidRequest("the form is too large")
        return parse_params(body)

    def _browser(self, step: Callable[[StarletteRequest, dict[str, str]], Outcome], *,
                 protocol: bool = False) -> Callable[[StarletteRequest], Awaitable[Response]]:
        """A page or browser step on the threads; ``protocol`` steps (no password check) as the
        protocol endpoints run (:meth:`call`)."""
        run = self.call if protocol else self.run

        async def endpoint(request: StarletteRequest) -> Response:
            try:
                params = await self._form(request) if request.method == "POST" else \
                    parse_params(request.url.query)
            except (OAuthError, UnicodeDecodeError):
                return self._outcome(request, Outcome(error=InvalidRequest("malformed form")))
            outcome = await run(step, request, params)
            return self._outcome(request, outcome)
        return endpoint

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[BaseRoute]:
        p = self.prefix
        s = self.provider.settings
        login = self.provider.login
        interaction = INTERACTION_COOKIE

        def cookie(request: StarletteRequest, name: str) -> str:
            return request.cookies.get(name, "")

        async def metadata(request: StarletteRequest) -> Response:
            return Response(self._metadata, media_type="application/json",
                            headers={"cache-control": "public, max-age=300",
                                     "access-control-allow-origin": "*"})

        async def jwks(request: StarletteRequest) -> Response:
            return Response(self.provider.jwks(), media_type="application/jwk-set+json",
                            headers={"cache-control": "public, max-age=300",
                                     "access-control-allow-origin": "*"})

        def authorize(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return login.authorize(params, cookie(request, "vnid_session"), self.now(),
                                   request.scope.get("state", {}).get("request_id", ""))

        def login_page(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return login.view(cookie(request, interaction), self.now())

        def login_submit(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            # The client's address through the trusted proxy chain (server/http/client.py).
            return login.submit_password(cookie(request, interaction), params.get("csrf", ""),
                                         params.get("identifier", ""), params.get("password", ""),
                                         client_address(request.scope), self.now(),
                                         device_cookie=cookie(request, DEVICE_COOKIE))

        def otp_submit(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return login.submit_totp(cookie(request, interaction), params.get("csrf", ""),
                                     params.get("otp", ""), client_address(request.scope),
                                     self.now(), device_cookie=cookie(request, DEVICE_COOKIE))

        def qr_complete(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return login.complete_qr(cookie(request, interaction), params.get("csrf", ""),
                                     self.now())

        def consent(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            if request.method == "GET":
                return login.view(cookie(request, interaction), self.now())
            return login.decide_consent(cookie(request, interaction), params.get("csrf", ""),
                                        params.get("decision") == "allow", self.now())

        def cancel(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return login.cancel(cookie(request, interaction), params.get("csrf", ""), self.now())

        def logout(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return self.provider.logout.request(params, cookie(request, "vnid_session"),
                                                self.now())

        def account(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return self.self_service.consents(cookie(request, "vnid_session"), self.now())

        def withdraw(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return self.self_service.withdraw(cookie(request, "vnid_session"),
                                              params.get("csrf", ""),
                                              params.get("client_id", ""), self.now())

        def logout_confirm(request: StarletteRequest, params: dict[str, str]) -> Outcome:
            return self.provider.logout.confirm(params, cookie(request, "vnid_session"),
                                                self.now())

        async def qr_status(request: StarletteRequest) -> Response:
            status = await self.run(login.qr_status, cookie(request, interaction),
                                        self.now())
            return JSONResponse({"status": status}, headers={"cache-control": "no-store"})

        async def static(request: StarletteRequest) -> Response:
            name = request.path_params["name"]
            if name not in ("pages.css", "qr.js"):
                return Response(status_code=404)
            return FileResponse(_HERE / "static" / name,
                                headers={"cache-control": "public, max-age=3600"})

        api = self._api
        provider = self.provider
        # The protocol endpoints, dispatched ahead of the Starlette stack (DirectRoute).
        routes: list[BaseRoute] = [
            DirectRoute(f"{p}/.well-known/openid-configuration", metadata),
            DirectRoute(f"/.well-known/oauth-authorization-server{p}", metadata),
            DirectRoute(f"/.well-known/openid-configuration{p}", metadata),
            DirectRoute(f"{p}/jwks", jwks),
            DirectRoute(f"{p}/par", api(provider.par, s.par_endpoint), methods=["POST"]),
            DirectRoute(f"{p}/token", api(provider.token, s.token_endpoint), methods=["POST"]),
            DirectRoute(f"{p}/userinfo", api(provider.userinfo, s.userinfo_endpoint),
                        methods=["GET", "POST"]),
            DirectRoute(f"{p}/introspect", api(provider.introspect, s.introspection_endpoint),
                        methods=["POST"]),
            DirectRoute(f"{p}/revoke", api(provider.revoke, s.revocation_endpoint),
                        methods=["POST"]),
            DirectRoute(f"{p}/bc-authorize", api(provider.backchannel_authentication,
                                                 s.backchannel_authentication_endpoint),
                        methods=["POST"]),
            DirectRoute(f"{p}/authorize", _AsgiEndpoint(self._browser(authorize, protocol=True)),
                        methods=["GET", "POST"]),
            Route(f"{p}/login", self._browser(login_page), methods=["GET"]),
            Route(f"{p}/login", self._browser(login_submit), methods=["POST"]),
            Route(f"{p}/login/otp", self._browser(otp_submit), methods=["POST"]),
            Route(f"{p}/login/qr", self._browser(qr_complete), methods=["POST"]),
            Route(f"{p}/login/qr/status", qr_status, methods=["GET"]),
            Route(f"{p}/login/cancel", self._browser(cancel), methods=["POST"]),
            Route(f"{p}/consent", self._browser(consent), methods=["GET", "POST"]),
            Route(f"{p}/logout", self._browser(logout), methods=["GET", "POST"]),
            Route(f"{p}/logout/confirm", self._browser(logout_confirm), methods=["POST"]),
            Route(f"{p}/account", self._browser(account), methods=["GET"]),
            Route(f"{p}/account/consents/withdraw", self._browser(withdraw), methods=["POST"]),
            Route(f"{p}/static/{{name}}", static, methods=["GET"]),
        ]
        routes += self._app_routes()
        return routes

    # ------------------------------------------------------------------ the citizen app
    def _app_routes(self) -> list[BaseRoute]:
        p = self.prefix
        devices = self.provider.devices
        issuer = self.provider.issuer

        async def run(fn: Callable[..., Any], *args: Any) -> Response:
            try:
                result = await self.run(fn, *args)
            except VnidError as exc:
                return _app_error(exc)
            return JSONResponse(result, headers={"cache-control": "no-store"})

        async def body(request: StarletteRequest) -> dict[str, Any] | None:
            raw = await request.body()
            if len(raw) > _MAX_BODY:
                return None
            try:
                data = json.loads(raw)
            except ValueError:
                return None
            return data if isinstance(data, dict) else None

        async def describe(request: StarletteRequest) -> Response:
            return await run(devices.describe, request.path_params["approval"], self.now())

        async def decide(request: StarletteRequest) -> Response:
            data = await body(request)
            if data is None:
                return _app_error(InvalidInput("send a JSON object", reason="MALFORMED"))
            approval = request.path_params["approval"]

            def go() -> dict[str, str]:
                return {"status": devices.decide(approval, str(data.get("statement", "")),
                                                 self.now())}
            return await run(go)

        async def pending(request: StarletteRequest) -> Response:
            return await run(devices.pending, request.headers.get("authorization", ""), "GET",
                             f"{issuer}/app/v1/approvals", self.now())

        async def enrol(request: StarletteRequest) -> Response:
            data = await body(request)
            if data is None:
                return _app_error(InvalidInput("send a JSON object", reason="MALFORMED"))
            return await run(devices.enrol, data, self.now())

        return [
            Route(f"{p}/app/v1/approvals", pending, methods=["GET"]),
            Route(f"{p}/app/v1/approvals/{{approval}}", describe, methods=["GET"]),
            Route(f"{p}/app/v1/approvals/{{approval}}", decide, methods=["POST"]),
            Route(f"{p}/app/v1/devices", enrol, methods=["POST"]),
        ]


class _AsgiEndpoint:
    """A Starlette request -> response endpoint as a plain ASGI application (none of Starlette's
    per-request exception handling, which has nothing to handle here)."""

    def __init__(self, endpoint: Callable[[StarletteRequest], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(StarletteRequest(scope, receive))
        await response(scope, receive, send)


class _ApiEndpoint:
    """A protocol endpoint as a plain ASGI application (the token, PAR and userinfo endpoints are
    the provider's hot path): the request is read and the answer written without building
    Starlette request and response objects."""

    def __init__(self, http: IdentityHttp,
                 handler: Callable[[Request, dt.datetime], OAuthResponse], url: str) -> None:
        self.http = http
        self.handler = handler
        self.url = url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        result: OAuthResponse
        try:
            if method == "POST":
                body = b""
                more = True
                while more:
                    message = await receive()
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > _MAX_BODY:
                        raise InvalidRequest("the request is too large")
                content_type = headers.get("content-type", "").split(";")[0].strip()
                if content_type != "application/x-www-form-urlencoded":
                    raise InvalidRequest("send application/x-www-form-urlencoded")
                params = parse_params(body)
            else:
                params = parse_params(scope.get("query_string", b""))
        except (OAuthError, UnicodeDecodeError) as exc:
            error = exc if isinstance(exc, OAuthError) else InvalidRequest("bad encoding")
            result = OAuthResponse.error(error)
        else:
            headers["x-request-id"] = scope.get("state", {}).get("request_id", "")
            client = scope.get("client")
            request = Request(method=method, url=self.url, headers=headers, params=params,
                              remote=client[0] if client else "")
            result = await self.http.call(self.handler, request, self.http.now())
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
        raw.append((b"content-length", str(len(result.body)).encode()))
        await send({"type": "http.response.start", "status": result.status, "headers": raw})
        await send({"type": "http.response.body", "body": result.body})


def _app_error(exc: VnidError) -> Response:
    status = 500
    for category, code in ((InvalidInput, 400), (AuthenticationFailed, 401), (NotFound, 404),
                           (FailedPrecondition, 409), (RateLimited, 429)):
        if isinstance(exc, category):
            status = code
            break
    return JSONResponse({"error": exc.reason, "message": exc.message}, status,
                        headers={"cache-control": "no-store"})



