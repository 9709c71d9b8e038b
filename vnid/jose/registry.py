"""The JWS algorithms this package signs and verifies with, as joserfc registries.

RFC 9864 (2025) deprecates the polymorphic ``EdDSA`` name in favour of the fully specified
``Ed25519``, and joserfc warns on every use of ``EdDSA``. Relying parties and FAPI 2.0 still use
``EdDSA`` and this provider only ever uses it with Ed25519 keys — exactly what ``Ed25519`` names —
so the algorithm is registered here without the warning rather than silencing warnings globally
(which would not be thread-safe).
"""

from __future__ import annotations

import functools
from collections.abc import Collection

from joserfc import jws  # noqa: F401  (registers the standard algorithms)
from joserfc._rfc8037.jws_eddsa import EdDSAAlgorithm
from joserfc.jws import JWSRegistry

__all__ = ["jws_registry"]


class _Ed25519Only(EdDSAAlgorithm):
    security_warning = None  # type: ignore[assignment]


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _Ed25519Only()}


@functools.cache
def _registry(algorithms: tuple[str, ...]) -> JWSRegistry:
    return _Registry(algorithms=list(algorithms))


def jws_registry(algorithms: Collection[str]) -> JWSRegistry:
    """A registry allowing exactly ``algorithms``."""
    return _registry(tuple(sorted(algorithms)))
