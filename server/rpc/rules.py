"""Per-method authorization rules, read from the ``(vnegov.common.v1.authorization)`` option that
every method declares in its ``.proto`` file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pool

from vnegov.common.v1 import authorization_pb2

__all__ = ["MethodRule", "load_rules"]


@dataclass(frozen=True, slots=True)
class MethodRule:
    scopes: tuple[str, ...] = ()
    any_authenticated_caller: bool = False


# Services from grpcio's own packages: any authenticated caller may use them.
BUILTIN_SERVICES: Mapping[str, MethodRule] = {
    "grpc.health.v1.Health": MethodRule(any_authenticated_caller=True),
    "grpc.reflection.v1alpha.ServerReflection": MethodRule(any_authenticated_caller=True),
    "grpc.reflection.v1.ServerReflection": MethodRule(any_authenticated_caller=True),
}


def load_rules(service_names: Iterable[str]) -> dict[str, MethodRule]:
    """``/package.Service/Method`` -> rule, for every method of the named services.

    Raises ``ValueError`` naming the first method without a rule: a method nobody decided about
    must not be served.
    """
    pool = descriptor_pool.Default()
    rules: dict[str, MethodRule] = {}
    for service_name in service_names:
        service = pool.FindServiceByName(service_name)
        builtin = BUILTIN_SERVICES.get(service_name)
        for method in service.methods:
            path = f"/{service_name}/{method.name}"
            if builtin is not None:
                rules[path] = builtin
                continue
            options = method.GetOptions()
            if not options.HasExtension(authorization_pb2.authorization):
                raise ValueError(f"method {path} declares no (vnegov.common.v1.authorization)")
            rule = options.Extensions[authorization_pb2.authorization]
            if not rule.scopes and not rule.any_authenticated_caller:
                raise ValueError(f"method {path} has an empty authorization rule")
            rules[path] = MethodRule(tuple(rule.scopes), rule.any_authenticated_caller)
    return rules
