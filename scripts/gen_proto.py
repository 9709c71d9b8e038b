#!/usr/bin/env python3
"""Regenerate the Python code for the buf module in proto/ into gen/python/ (messages, gRPC stubs,
and type stubs for both).

    python scripts/gen_proto.py          # write the generated files under gen/python/
    python scripts/gen_proto.py --check  # exit 1 if the committed files differ from a regeneration

``proto/`` holds only the sources (the API contract every language compiles); the generated Python
is the ``vnegov`` import package under ``gen/python/`` (``vnegov.identity.v1`` and so on), with a
hand-written ``gen/python/vnegov/__init__.py`` that this script leaves alone.

Generation uses the pinned grpcio-tools and mypy-protobuf from the test extra, so the output is
byte-for-byte reproducible.

Field constraints are buf's standard annotations (``buf/validate/validate.proto``). Its definition
comes from the installed ``protovalidate`` package (the library that enforces the annotations, so
both always agree): the package carries the file's descriptor, which is handed to protoc as a
descriptor set, and ``buf/validate/validate_pb2.py`` is generated from it into ``gen/python/buf``
for the generated modules to import (Apache-2.0, ``gen/python/buf/LICENSE``).
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "gen" / "python"
PACKAGE = PROTO_ROOT / "vnegov"
# Written by hand (the package's version), never generated.
HAND_WRITTEN = {Path("vnegov") / "__init__.py"}
PACKAGES = ("vnegov", "buf")
VALIDATE = "buf/validate/validate.proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.proto"))


def upstream_validate_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """buf/validate/validate.proto as the installed protovalidate package carries it."""
    import protovalidate

    module = Path(protovalidate.__file__).parent / "_gen" / "buf" / "validate" / "validate_pb.py"
    found = re.search(r"_DESC = file_desc\(\s*(b'.*?'),\n", module.read_text(), re.S)
    if found is None:
        raise SystemExit(f"cannot find the descriptor of {VALIDATE} in {module}")
    validate = descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(found.group(1)))
    assert validate.name == VALIDATE, validate.name
    return validate


def validate_descriptor_set(path: Path) -> None:
    """Write a FileDescriptorSet with buf/validate/validate.proto (from the installed protovalidate
    package) and the well-known types it imports."""
    from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

    files = descriptor_pb2.FileDescriptorSet()
    for wkt in (descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2):
        files.file.add().MergeFromString(wkt.DESCRIPTOR.serialized_pb)
    files.file.append(upstream_validate_descriptor())
    path.write_bytes(files.SerializeToString())


def generate(out: Path) -> None:
    bindir = Path(sys.executable).parent
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    rel = [str(p.relative_to(PROTO_ROOT)) for p in sources()] + [VALIDATE]
    descriptors = out / "validate.binpb"
    validate_descriptor_set(descriptors)
    # Only the project's sources on the path: buf/validate/validate.proto must come from the
    # descriptor set (the exact one protovalidate enforces), not from the vendored source copy.
    src = out / "src"
    shutil.copytree(PACKAGE, src / "vnegov")
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptors}",
        f"--proto_path={src}", f"--proto_path={wkt}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}",
        *rel,
    ]
    done = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
    descriptors.unlink()
    shutil.rmtree(src)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    # Every directory on the way to a generated module is a package.
    for directory in {p.parent for p in out.rglob("*_pb2.py")}:
        d = directory
        while d != out:
            (d / "__init__.py").touch()
            d = d.parent
    (out / "vnegov" / "py.typed").touch()


def generated_files(base: Path) -> set[Path]:
    files = {p.relative_to(base) for package in PACKAGES for p in (base / package).rglob("*")
             if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES)
                                 or p.name in {"__init__.py", "py.typed"})}
    return files - HAND_WRITTEN


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = generated_files(out)
        current = generated_files(OUT_ROOT)
        differ = sorted(
            str(p) for p in fresh | current
            if p not in fresh or p not in current
            or not filecmp.cmp(out / p, OUT_ROOT / p, shallow=False)
        )
        if args.check:
            if differ:
                print("generated protobuf code is out of date; run scripts/gen_proto.py:")
                print("\n".join(f"  {d}" for d in differ))
                return 1
            print(f"generated protobuf code is up to date ({len(fresh)} files)")
            return 0
        for p in current - fresh:
            (OUT_ROOT / p).unlink()
        for p in fresh:
            (OUT_ROOT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / p, OUT_ROOT / p)
        print(f"wrote {len(fresh)} files; {len(differ)} changed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
