"""The OpenID provider core (OpenID Connect Core 1.0 with the FAPI 2.0 Security Profile, RP-Initiated
and Back-Channel Logout, CIBA poll mode), on the ports in :mod:`vnid.oidc.ports`.

``OpenIDProvider`` is imported on first use: the endpoint modules under :mod:`vnid.oauth2` build on
this package, and the provider builds on them.
"""

from typing import Any

from vnid.oidc.core import Outcome
from vnid.oidc.ports import ClientRegistry, IdentityEvent, ProviderStore, StoreTransaction
from vnid.oidc.settings import ProviderSettings

__all__ = [
    "ClientRegistry",
    "IdentityEvent",
    "OpenIDProvider",
    "Outcome",
    "ProviderSettings",
    "ProviderStore",
    "StoreTransaction",
]


def __getattr__(name: str) -> Any:
    if name == "OpenIDProvider":
        from vnid.oidc.provider import OpenIDProvider

        return OpenIDProvider
    raise AttributeError(name)
