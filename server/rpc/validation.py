"""Request field constraints, declared in the ``.proto`` files with buf's standard validation
annotations (``buf.validate``: lengths, patterns, ranges, required fields, defined enum values)
and enforced by ``protovalidate`` before any servicer code runs.

A request that breaks them is INVALID_ARGUMENT (reason ``INVALID_ARGUMENT``, ErrorInfo metadata
``field`` = the first field) with a ``google.rpc.BadRequest`` detail listing every violation:
the field's path (``payer.name``, ``lines[2].amount``), the rule (``string.max_len``) and the
rule's message. Clients in every language read the same rules from the ``.proto`` files, and no
value longer than its database column reaches storage, so SQLite and PostgreSQL always agree.

Messages whose type (with every message type it contains) declares no constraint are not handed
to the validator at all: the check costs nothing for them.
"""

from __future__ import annotations

from typing import Any

import protovalidate
from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.rpc import error_details_pb2

from server.errors import InvalidArgument

__all__ = ["RequestValidator", "field_path", "has_constraints"]


def has_constraints(descriptor: Descriptor, _seen: set[str] | None = None) -> bool:
    """Whether ``descriptor`` or any message type reachable from it declares a rule."""
    seen = _seen if _seen is not None else set()
    if descriptor.full_name in seen:
        return False
    seen.add(descriptor.full_name)
    if descriptor.GetOptions().HasExtension(validate_pb2.message):
        return True
    for oneof in descriptor.oneofs:
        if oneof.GetOptions().HasExtension(validate_pb2.oneof):
            return True
    for field in descriptor.fields:
        if field.GetOptions().HasExtension(validate_pb2.field):
            return True
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None \
                and has_constraints(field.message_type, seen):
            return True
    return False


def field_path(violation: Any) -> str:
    """``payer.name``, ``lines[2].amount``, ``claims["x"]`` for a protovalidate violation."""
    parts: list[str] = []
    for element in violation.proto.field.elements:
        text = element.field_name
        subscript = getattr(element, "subscript", None)  # a oneof: field name and value
        if subscript is not None and getattr(subscript, "field", None):
            key = subscript.value
            text += f'["{key}"]' if subscript.field == "string_key" else f"[{key}]"
        parts.append(text)
    return ".".join(parts)


class RequestValidator:
    def __init__(self) -> None:
        self._validator = protovalidate.Validator()
        self._constrained: dict[str, bool] = {}

    def check(self, message: Any) -> None:
        """Raise :class:`InvalidArgument` with a BadRequest when ``message`` breaks its rules."""
        name = message.DESCRIPTOR.full_name
        constrained = self._constrained.get(name)
        if constrained is None:
            constrained = self._constrained[name] = has_constraints(message.DESCRIPTOR)
        if not constrained:
            return
        violations = self._validator.collect_violations(message)
        if not violations:
            return
        request = error_details_pb2.BadRequest()
        for violation in violations:
            request.field_violations.add(field=field_path(violation),
                                         description=violation.proto.message,
                                         reason=violation.proto.rule_id)
        first = request.field_violations[0]
        raise InvalidArgument(
            f"{first.field}: {first.description}" + (
                f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""),
            metadata={"field": first.field, "rule": first.reason}, details=(request,))
