"""RFC 9126 OAuth 2.0 Pushed Authorization Requests.

The client authenticates and sends its authorization request directly to the provider, which
validates all of it at once and answers with a one-time ``request_uri`` that lives
``par_lifetime`` (60 s by default, always under the 600 s FAPI 2.0 limit). FAPI clients must use it
(``require_pushed_authorization_requests``). A DPoP proof on the PAR request binds the future code
to its key (RFC 9449 §10.1), as ``dpop_jkt`` does.
"""

from __future__ import annotations

import datetime as dt

from vnid.oauth2.errors import InvalidRequest, OAuthError
from vnid.oauth2.http import Request, Response
from vnid.oidc.authorization import (
    REQUEST_URI_PREFIX,
    RedirectableError,
    parse_authorization_request,
)
from vnid.oidc.core import ProviderCore
from vnid.oidc.records import handle_hash, new_handle

__all__ = ["REQUEST_URI_PREFIX", "pushed_authorization_request"]


def pushed_authorization_request(core: ProviderCore, request: Request, now: dt.datetime) -> Response:
    headers = core.nonce_header(now)
    try:
        if request.method != "POST":
            raise InvalidRequest("use POST")
        with core.checked(request, now) as checks:
            client = checks.client()
            proof = checks.dpop()
            try:
                auth = parse_authorization_request(core, client, request.params, pushed=True,
                                                   proof_jkt=proof.jkt if proof else "")
            except RedirectableError as exc:
                raise exc.error from None
            handle = new_handle()
            lifetime = core.settings.par_lifetime
            with core.transaction(request) as tx:
                checks.spend(tx)
                tx.put_pushed(handle_hash(handle), auth, now + lifetime)
        body = {"request_uri": REQUEST_URI_PREFIX + handle,
                "expires_in": int(lifetime.total_seconds())}
        return Response.json(body, 201, headers)
    except OAuthError as exc:
        exc.headers.extend(h for h in headers if h not in exc.headers and
                           not any(k == h[0] for k, _ in exc.headers))
        return Response.error(exc)
