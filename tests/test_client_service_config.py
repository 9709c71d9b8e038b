"""The published service config (vnegov_client/service_config.json): every method has one deliberate
retry decision, only safe methods are retried, and grpc applies it as written."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
SIGN_DOCUMENT = "vnegov.signing.v1.SigningService/SignDocument"
EXTEND_DOCUMENT = "vnegov.signing.v1.SigningService/ExtendDocument"
# Streamed mutations that are repeated: they store nothing but their audit event, and the caller
# receives one document (vnegov_client's docstring gives the reasons, with the official's
# one-time code that keeps a repeat from signing twice).
REPEATED_STREAMS = {SIGN_DOCUMENT, EXTEND_DOCUMENT}


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
            assert read_only or key in REPEATED_STREAMS, \
                f"{key}: a streamed mutation is repeated only after its own review"
    # The ones that must never be repeated by policy: single-use activation data, approvals.
    for key in ("vnegov.signing.v1.SigningService/SignHash",
                "vnegov.signing.v1.SigningService/AuthorizeCredential",
                "vnegov.signing.v1.SigningService/StartCredentialApproval",
                "vnegov.signing.v1.CertificateAuthorityService/ApproveCertificateRequest"):
        assert key not in retried
    # Signing a document with the agency's seal, and renewing its archive time-stamp, are.
    for key in REPEATED_STREAMS:
        assert set(retried[key]) == {"UNAVAILABLE", "ABORTED"}, key


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


@asynccontextmanager
async def _published_channel(handler: grpc.GenericRpcHandler,
                             options: list[tuple[str, int]] | None = None
                             ) -> AsyncIterator[grpc.aio.Channel]:
    """A loopback server with ``handler``, and a channel to it with the published options."""
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             options=vnegov_client.channel_options()) as channel:
            yield channel
    finally:
        await server.stop(0)


async def test_grpc_applies_the_retry_policy() -> None:
    flaky = _Flaky(failures=2)
    async with _published_channel(flaky) as channel:
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
    assert flaky.calls["/vnegov.admin.v1.AdminService/GetCaller"] == 3  # two failures, then OK
    assert flaky.calls["/vnegov.signing.v1.SigningService/SignHash"] == 1  # never repeated


class _FlakySigner(grpc.GenericRpcHandler):
    """SignDocument that reads the whole request stream, then fails with UNAVAILABLE
    ``failures`` times (after sending one message when ``answer_first``) before answering."""

    def __init__(self, failures: int, *, answer_first: bool = False) -> None:
        self.failures = failures
        self.answer_first = answer_first
        self.received: list[bytes] = []  # the document as each attempt received it

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        async def answer(requests: AsyncIterator[documents_pb2.SignDocumentRequest],
                         context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[documents_pb2.SignDocumentResponse]:
            document = b"".join([request.chunk async for request in requests])
            self.received.append(document)
            if self.answer_first:
                yield documents_pb2.SignDocumentResponse(chunk=b"%PDF")
            if len(self.received) <= self.failures:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            yield documents_pb2.SignDocumentResponse(
                chunk=document, result=documents_pb2.SignDocumentResult(size=len(document)))

        return grpc.stream_stream_rpc_method_handler(
            answer, request_deserializer=documents_pb2.SignDocumentRequest.FromString,
            response_serializer=documents_pb2.SignDocumentResponse.SerializeToString)


async def _sign_through(flaky: _FlakySigner, document: bytes) -> list[bytes]:
    async with _published_channel(
            flaky, options=[("grpc.max_receive_message_length", 8 << 20)]) as channel:
        sign_document = channel.stream_stream(
            "/vnegov.signing.v1.SigningService/SignDocument",
            request_serializer=documents_pb2.SignDocumentRequest.SerializeToString,
            response_deserializer=documents_pb2.SignDocumentResponse.FromString)

        async def requests() -> AsyncIterator[documents_pb2.SignDocumentRequest]:
            yield documents_pb2.SignDocumentRequest(header=documents_pb2.SignDocumentHeader(
                format=documents_pb2.PDF, agency_signer="ubnd-hcm"))
            for i in range(0, len(document), 64 << 10):
                yield documents_pb2.SignDocumentRequest(chunk=document[i:i + (64 << 10)])

        return [response.chunk async for response in sign_document(requests(), timeout=10)]


async def test_grpc_repeats_a_streamed_signing_call_from_its_buffer() -> None:
    """What vnegov_client says of SignDocument: grpc repeats it, with every message sent, while
    the client has received nothing and what it sent fits in the retry buffer (256 KiB)."""
    document = bytes(range(256)) * 800  # 200 KiB in four chunks
    flaky = _FlakySigner(failures=2)
    assert await _sign_through(flaky, document) == [document]
    assert flaky.received == [document] * 3  # two failures, then the same request answered

    large = bytes(range(256)) * 1200  # 300 KiB: the call is committed once the buffer is full
    flaky = _FlakySigner(failures=1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _sign_through(flaky, large)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.received == [large]  # not repeated: the failure reaches the caller

    flaky = _FlakySigner(failures=1, answer_first=True)  # part of the answer had arrived
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _sign_through(flaky, document)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.received == [document]
