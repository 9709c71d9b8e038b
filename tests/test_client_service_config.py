"""The published service config (vnegov_client/service_config.json): every method has one deliberate
retry decision, only safe methods are retried, and grpc applies it as written."""

from __future__ import annotations

import importlib
from collections import Counter

import grpc
import pytest

import vnegov_client
from vnegov.admin.v1 import admin_pb2
from vnegov.signing.v1 import documents_pb2

SERVICE_MODULES = [
    "vnegov.admin.v1.admin_pb2",
    "vnegov.identity.v1.identity_pb2",
    "vnegov.payments.v1.payments_pb2",
    "vnegov.signing.v1.certificate_authority_pb2",
    "vnegov.signing.v1.documents_pb2",
]
READ_ONLY_PREFIXES = ("Get", "List", "Quote", "Introspect", "Verify", "Compare", "Plan")


def _methods() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in SERVICE_MODULES:
        for service in importlib.import_module(name).DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found[f"{service.full_name}/{method.name}"] = method
    return found


def _decisions() -> tuple[Counter[str], dict[str, list[str]]]:
    named: Counter[str] = Counter()
    retried: dict[str, list[str]] = {}
    for entry in vnegov_client.service_config()["methodConfig"]:
        for name in entry["name"]:
            if "method" not in name:
                continue
            key = f"{name['service']}/{name['method']}"
            named[key] += 1
            if "retryPolicy" in entry:
                retried[key] = entry["retryPolicy"]["retryableStatusCodes"]
    return named, retried


def test_every_method_has_exactly_one_decision() -> None:
    named, _ = _decisions()
    methods = set(_methods())
    assert set(named) == methods, {"missing": sorted(methods - set(named)),
                                   "unknown": sorted(set(named) - methods)}
    assert [k for k, n in named.items() if n > 1] == []


def test_only_safe_methods_are_retried() -> None:
    _, retried = _decisions()
    methods = _methods()
    for key, codes in retried.items():
        method = methods[key]
        name = key.rsplit("/", 1)[1]
        read_only = name.startswith(READ_ONLY_PREFIXES) or key.endswith("IntrospectToken")
        has_request_id = "request_id" in method.input_type.fields_by_name  # type: ignore[attr-defined]
        assert read_only or has_request_id or key in vnegov_client.IDEMPOTENT_MUTATIONS, key
        assert set(codes) <= {"UNAVAILABLE", "ABORTED"}, key
        if method.client_streaming:  # type: ignore[attr-defined]
            assert read_only, f"{key}: a streamed mutation must not be repeated"
    # The ones that must never be repeated by policy: single-use activation data, approvals.
    for key in ("vnegov.signing.v1.SigningService/SignHash",
                "vnegov.signing.v1.SigningService/SignDocument",
                "vnegov.signing.v1.SigningService/AuthorizeCredential",
                "vnegov.signing.v1.CertificateAuthorityService/ApproveCertificateRequest"):
        assert key not in retried


class _Flaky(grpc.GenericRpcHandler):
    """Fails each method with UNAVAILABLE ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: Counter[str] = Counter()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]

        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.calls[method] += 1
            if self.calls[method] <= self.failures:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return b""

        return grpc.unary_unary_rpc_method_handler(answer)


async def test_grpc_applies_the_retry_policy() -> None:
    flaky = _Flaky(failures=2)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((flaky,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             options=vnegov_client.channel_options()) as channel:
            get_caller = channel.unary_unary(
                "/vnegov.admin.v1.AdminService/GetCaller",
                request_serializer=admin_pb2.GetCallerRequest.SerializeToString,
                response_deserializer=admin_pb2.Caller.FromString)
            await get_caller(admin_pb2.GetCallerRequest(), timeout=10)
            sign_hash = channel.unary_unary(
                "/vnegov.signing.v1.SigningService/SignHash",
                request_serializer=documents_pb2.SignHashRequest.SerializeToString,
                response_deserializer=documents_pb2.SignHashResponse.FromString)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await sign_hash(documents_pb2.SignHashRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)
    assert flaky.calls["/vnegov.admin.v1.AdminService/GetCaller"] == 3  # two failures, then OK
    assert flaky.calls["/vnegov.signing.v1.SigningService/SignHash"] == 1  # never repeated
