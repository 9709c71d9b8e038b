"""Field constraints declared in the .proto files (buf.validate) and enforced before servicer code.

Everything here is driven by the descriptors of the served APIs, so a method or field added later is
covered (or reported as unconstrained) without editing these tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from buf.validate import validate_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import String

import vnegov.admin.v1.admin_pb2  # noqa: F401 - registers the services' descriptors
import vnegov.identity.v1.identity_pb2  # noqa: F401
import vnegov.payments.v1.payments_pb2  # noqa: F401
import vnegov.signing.v1.certificate_authority_pb2  # noqa: F401
import vnegov.signing.v1.documents_pb2  # noqa: F401
from server.storage.schema import metadata
from tests.conftest import BACKENDS
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from tests.support.server import CALLERS, running_server

SERVICES = ["vnegov.admin.v1.AdminService", "vnegov.identity.v1.IdentityService",
            "vnegov.payments.v1.PaymentsService",
            "vnegov.signing.v1.CertificateAuthorityService", "vnegov.signing.v1.SigningService"]
_POOL = descriptor_pool.Default()
_LONG = 1 << 20  # bytes rules above this are left alone by the fuzz (message size limits)


def methods() -> list[tuple[str, Any]]:
    found = []
    for service in SERVICES:
        for method in _POOL.FindServiceByName(service).methods:
            found.append((f"/{service}/{method.name}", method))
    return found


def rules(field: FieldDescriptor) -> Any:
    options = field.GetOptions()
    return options.Extensions[validate_pb2.field] if options.HasExtension(
        validate_pb2.field) else None


def request_fields(descriptor: Descriptor, prefix: str = "",
                   seen: frozenset[str] = frozenset()) -> list[tuple[str, FieldDescriptor]]:
    """Every field a request can carry, nested messages included (well-known types excluded)."""
    out = []
    for field in descriptor.fields:
        path = prefix + field.name
        out.append((path, field))
        sub = field.message_type
        if sub is not None and not sub.full_name.startswith("google.") \
                and sub.full_name not in seen and not sub.GetOptions().map_entry:
            out += request_fields(sub, path + ".", seen | {descriptor.full_name})
    return out


def unconstrained() -> list[str]:
    missing = set()
    for _, method in methods():
        for _path, field in request_fields(method.input_type):
            kind = field.type
            needs = field.is_repeated or kind in (
                FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_ENUM)
            if field.is_repeated and kind == FieldDescriptor.TYPE_MESSAGE \
                    and field.message_type.GetOptions().map_entry:
                needs = True
            if needs and rules(field) is None:
                missing.add(f"{field.containing_type.full_name}.{field.name}")
    return sorted(missing)


# Fields deliberately without a rule, and why.
UNCONSTRAINED_ON_PURPOSE: set[str] = set()


def test_every_request_string_bytes_enum_and_list_field_declares_a_rule() -> None:
    assert [m for m in unconstrained() if m not in UNCONSTRAINED_ON_PURPOSE] == []


# ------------------------------------------------------------------ database columns
# Column name -> request field name where they differ (the column stores that field).
ALIASES = {"locked_reason": "reason", "client_request_id": "request_id"}
# Columns that share a name with a request field of their domain but never store it: resource
# names are parsed into ids; these hold server vocabularies (revocation reasons, actions).
NOT_FROM_REQUESTS = {"name", "ca_status_log.reason", "ca_status_log.action",
                     "ca_reorganisation_items.action"}
TABLE_DOMAINS = {"identity_": "vnegov.identity.", "payments_": "vnegov.payments.",
                 "ca_": "vnegov.signing.", "documents_": "vnegov.signing."}


def test_every_string_column_holding_a_request_field_is_as_long_as_the_rule_allows() -> None:
    """A request field's max_len never exceeds the column that stores it: PostgreSQL would refuse
    (INTERNAL) what SQLite stores. Columns are matched to request fields of their domain by name."""
    by_name: dict[str, list[tuple[str, int]]] = {}
    for _, method in methods():
        for _path, field in request_fields(method.input_type):
            rule = rules(field)
            if field.type == FieldDescriptor.TYPE_STRING and rule is not None:
                limit = rule.string.max_len if rule.string.HasField("max_len") else None
                if limit:
                    by_name.setdefault(field.name, []).append((field.full_name, limit))
    too_long, matched = [], 0
    for table in metadata.sorted_tables:
        domain = next((d for p, d in TABLE_DOMAINS.items() if table.name.startswith(p)), None)
        if domain is None:
            continue
        for column in table.columns:
            if not isinstance(column.type, String) or column.type.length is None:
                continue
            if column.name in NOT_FROM_REQUESTS or f"{table.name}.{column.name}" \
                    in NOT_FROM_REQUESTS:
                continue
            name = ALIASES.get(column.name, column.name)
            for field, limit in by_name.get(name, []):
                if field.startswith(domain):
                    matched += 1
                    if limit > column.type.length:
                        too_long.append(f"{table.name}.{column.name} ({column.type.length}) < "
                                        f"{field} ({limit})")
    assert matched > 10
    assert too_long == []


# ------------------------------------------------------------------ enforcement on a server
def oversized(descriptor: Descriptor, depth: int = 0) -> tuple[Message, set[str]]:
    """A request of ``descriptor`` with every bounded field just past its bound, and the paths of
    the fields that must be reported."""
    message = GetMessageClass(descriptor)()
    expected: set[str] = set()
    for field in descriptor.fields:
        if field.containing_oneof is not None and \
                message.WhichOneof(field.containing_oneof.name) is not None:
            continue
        rule = rules(field)
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated \
                and not field.message_type.full_name.startswith("google.") and depth < 3:
            sub, paths = oversized(field.message_type, depth + 1)
            getattr(message, field.name).CopyFrom(sub)
            expected |= {f"{field.name}.{p}" for p in paths}
            continue
        if rule is None or field.is_repeated:
            continue
        if field.type == FieldDescriptor.TYPE_STRING and rule.string.HasField("max_len"):
            setattr(message, field.name, "x" * (rule.string.max_len + 1))
            expected.add(field.name)
        elif field.type == FieldDescriptor.TYPE_BYTES and rule.bytes.HasField("max_len") \
                and rule.bytes.max_len < _LONG:
            setattr(message, field.name, b"x" * (rule.bytes.max_len + 1))
            expected.add(field.name)
        elif field.type == FieldDescriptor.TYPE_ENUM and rule.enum.defined_only:
            setattr(message, field.name, 9999)
            expected.add(field.name)
    return message, expected


ALL_SCOPES = sorted({s for _, m in methods() for s in m.GetOptions().Extensions[
    __import__("vnegov.common.v1.authorization_pb2",
               fromlist=["x"]).authorization].scopes})
SUPERUSER = {"auth": {"callers": [*CALLERS, {"agency_code": "000.00.00.X99", "scopes": ALL_SCOPES,
                                             "provinces": ["*"]}],
                      "plaintext_caller": "000.00.00.X99"}}


def bad_request(err: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        found = error_details_pb2.BadRequest()
        if detail.Unpack(found):
            return {v.field for v in found.field_violations}
    raise AssertionError(f"no BadRequest in {err.details()}")


def ident(data: bytes) -> bytes:
    return data


async def call(channel: grpc.aio.Channel, path: str, method: Any, request: bytes) -> None:
    if method.client_streaming and method.server_streaming:
        stream = channel.stream_stream(path, request_serializer=ident, response_deserializer=ident)
        async for _ in stream(iter([request])):
            pass
    elif method.client_streaming:
        await channel.stream_unary(path, request_serializer=ident,
                                   response_deserializer=ident)(iter([request]))
    elif method.server_streaming:
        async for _ in channel.unary_stream(path, request_serializer=ident,
                                            response_deserializer=ident)(request):
            pass
    else:
        await channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)(
            request)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_method_refuses_oversized_and_malformed_requests_alike_on_both_databases(
        backend: str, pki: TestPki, tmp_path: Path, postgres_templates: PostgresTemplates) -> None:
    """The descriptor-driven fuzz: for every method, a request with every bounded field past its
    bound is INVALID_ARGUMENT with a BadRequest naming each of them, and bytes that are not a
    protobuf message are INVALID_ARGUMENT (MALFORMED_MESSAGE); never INTERNAL or UNKNOWN, and
    the same codes on SQLite and PostgreSQL (the expectations are the same for both)."""
    with fresh_database(backend, postgres_templates, tmp_path) as db:
        async with running_server(pki, tmp_path, db.url.render_as_string(False), plaintext=True,
                                  extra=SUPERUSER) as srv:
            channel = srv.plaintext_channel()
            checked = 0
            for path, method in methods():
                request, expected = oversized(method.input_type)
                try:
                    await call(channel, path, method, b"")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
                    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                        continue  # the module is not configured on this server
                if expected:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(channel, path, method, request.SerializeToString())
                    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
                    assert expected <= bad_request(err.value), path
                    checked += 1
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(channel, path, method, b"\x0a\xff\xff\xff\xff\x0f")
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
            assert checked >= 25
