#!/usr/bin/env python3
"""Write proto/buf/validate/validate.proto from the descriptor inside the installed protovalidate
package, so that tools other than Python (buf, protoc for Java/.NET/Go, node's proto-loader) can
compile the module's imports.

    python scripts/vendor_validate_proto.py          # (re)write the file
    python scripts/vendor_validate_proto.py --check  # exit 1 unless the committed file is current

The Python runtime (protovalidate) and the generated code both use the descriptor that package
ships; this script prints that same descriptor as .proto source (without the upstream comments),
and tests/test_buf_module.py compiles the file with protoc and checks that the result is the
identical descriptor. protovalidate is Apache-2.0 (proto/buf/LICENSE).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2, text_encoding, text_format

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "gen" / "python")]

import buf.validate.validate_pb2  # noqa: E402,F401  (registers the extensions for printing options)
from gen_proto import VALIDATE, upstream_validate_descriptor  # noqa: E402

TARGET = ROOT / "proto" / VALIDATE
FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float", FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64", FDP.TYPE_INT32: "int32", FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32", FDP.TYPE_BOOL: "bool", FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes", FDP.TYPE_UINT32: "uint32", FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64", FDP.TYPE_SINT32: "sint32", FDP.TYPE_SINT64: "sint64",
}
LABELS = {FDP.LABEL_OPTIONAL: "optional", FDP.LABEL_REPEATED: "repeated", FDP.LABEL_REQUIRED: "required"}
MAX_FIELD = 536870912


def _quote(value: str) -> str:
    return '"' + text_encoding.CEscape(value, as_utf8=True) + '"'


def _options(options: object) -> list[str]:
    """Each set option as `name = value` in .proto syntax (extensions in parentheses, message
    values as text-format aggregates)."""
    out = []
    for field, value in options.ListFields():  # type: ignore[attr-defined]
        name = f"({field.full_name})" if field.is_extension else field.name
        if field.message_type is not None:
            body = text_format.MessageToString(value, as_one_line=True, as_utf8=True)
            out.append(f"{name} = {{{body}}}")
        elif field.type == field.TYPE_STRING:
            out.append(f"{name} = {_quote(value)}")
        elif field.type == field.TYPE_BOOL:
            out.append(f"{name} = {'true' if value else 'false'}")
        elif field.enum_type is not None:
            out.append(f"{name} = {field.enum_type.values_by_number[value].name}")
        else:
            out.append(f"{name} = {value}")
    return out


def _reparse(options: object, cls: type) -> object:
    # Re-parse so that extensions known to the default pool are decoded, not left unknown.
    return cls.FromString(options.SerializeToString())  # type: ignore[attr-defined]


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    return SCALARS.get(field.type) or field.type_name


def _default(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type == FDP.TYPE_STRING:
        return _quote(field.default_value)
    if field.type == FDP.TYPE_BYTES:
        return '"' + field.default_value + '"'
    return field.default_value


def _field(field: descriptor_pb2.FieldDescriptorProto, label: bool, maps: dict[str, str]) -> str:
    opts = _options(_reparse(field.options, descriptor_pb2.FieldOptions)) if field.HasField(
        "options") else []
    if field.HasField("default_value"):
        opts.insert(0, f"default = {_default(field)}")
    if field.type_name in maps and field.label == FDP.LABEL_REPEATED:
        head = maps[field.type_name]
    else:
        head = (LABELS[field.label] + " " if label else "") + _type(field)
    suffix = f" [{', '.join(opts)}]" if opts else ""
    return f"{head} {field.name} = {field.number}{suffix};"


def _ranges(ranges: object) -> str:
    parts = []
    for r in ranges:  # type: ignore[attr-defined]
        end = r.end - 1
        if r.end == MAX_FIELD or r.end == 2147483647 + 1:
            parts.append(f"{r.start} to max")
        elif end == r.start:
            parts.append(str(r.start))
        else:
            parts.append(f"{r.start} to {end}")
    return ", ".join(parts)


def _enum(enum: descriptor_pb2.EnumDescriptorProto, indent: str) -> list[str]:
    lines = [f"{indent}enum {enum.name} {{"]
    for opt in _options(_reparse(enum.options, descriptor_pb2.EnumOptions)):
        lines.append(f"{indent}  option {opt};")
    for value in enum.value:
        opts = _options(_reparse(value.options, descriptor_pb2.EnumValueOptions))
        suffix = f" [{', '.join(opts)}]" if opts else ""
        lines.append(f"{indent}  {value.name} = {value.number}{suffix};")
    for r in enum.reserved_range:
        lines.append(f"{indent}  reserved {r.start if r.start == r.end else f'{r.start} to {r.end}'};")
    if enum.reserved_name:
        lines.append(f"{indent}  reserved {', '.join(_quote(n) for n in enum.reserved_name)};")
    lines.append(f"{indent}}}")
    return lines


def _message(msg: descriptor_pb2.DescriptorProto, scope: str, indent: str) -> list[str]:
    full = f"{scope}.{msg.name}"
    maps = {}
    for nested in msg.nested_type:
        if nested.options.map_entry:
            key, value = nested.field
            maps[f"{full}.{nested.name}"] = f"map<{_type(key)}, {_type(value)}>"
    lines = [f"{indent}message {msg.name} {{"]
    inner = indent + "  "
    for opt in _options(_reparse(msg.options, descriptor_pb2.MessageOptions)):
        lines.append(f"{inner}option {opt};")
    printed_oneofs: set[int] = set()
    for field in msg.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            index = field.oneof_index
            if index in printed_oneofs:
                continue
            printed_oneofs.add(index)
            oneof = msg.oneof_decl[index]
            lines.append(f"{inner}oneof {oneof.name} {{")
            for opt in _options(_reparse(oneof.options, descriptor_pb2.OneofOptions)):
                lines.append(f"{inner}  option {opt};")
            for member in msg.field:
                if member.HasField("oneof_index") and member.oneof_index == index:
                    lines.append(f"{inner}  {_field(member, False, maps)}")
            lines.append(f"{inner}}}")
        else:
            lines.append(f"{inner}{_field(field, True, maps)}")
    for nested in msg.nested_type:
        if not nested.options.map_entry:
            lines += _message(nested, full, inner)
    for enum in msg.enum_type:
        lines += _enum(enum, inner)
    if msg.extension_range:
        lines.append(f"{inner}extensions {_ranges(msg.extension_range)};")
    if msg.reserved_range:
        lines.append(f"{inner}reserved {_ranges(msg.reserved_range)};")
    if msg.reserved_name:
        lines.append(f"{inner}reserved {', '.join(_quote(n) for n in msg.reserved_name)};")
    lines.append(f"{indent}}}")
    return lines


def render(file: descriptor_pb2.FileDescriptorProto) -> str:
    lines = [
        "// Copyright 2023-2025 Buf Technologies, Inc. Licensed under the Apache License, Version 2.0",
        "// (proto/buf/LICENSE). Printed by scripts/vendor_validate_proto.py from the descriptor in the",
        "// installed protovalidate package (the upstream comments are not in that descriptor); do not",
        "// edit by hand.",
        "",
        f'syntax = "{file.syntax or "proto2"}";',
        "",
        f"package {file.package};",
        "",
    ]
    lines += [f'import "{dep}";' for dep in file.dependency]
    lines.append("")
    lines += [f"option {opt};" for opt in _options(_reparse(file.options, descriptor_pb2.FileOptions))]
    by_extendee: dict[str, list[descriptor_pb2.FieldDescriptorProto]] = {}
    for ext in file.extension:
        by_extendee.setdefault(ext.extendee, []).append(ext)
    for extendee, exts in by_extendee.items():
        lines += ["", f"extend {extendee} {{"]
        lines += [f"  {_field(ext, True, {})}" for ext in exts]
        lines.append("}")
    for msg in file.message_type:
        lines += [""] + _message(msg, f".{file.package}", "")
    for enum in file.enum_type:
        lines += [""] + _enum(enum, "")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render(upstream_validate_descriptor())
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date; run scripts/vendor_validate_proto.py")
            return 1
        print(f"{TARGET.relative_to(ROOT)} is up to date")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
