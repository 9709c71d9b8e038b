"""proto/ is a buf module: it lints, it has not broken the last release's contract, every file
carries the options other languages' generators need, and the vendored buf/validate/validate.proto
is exactly the descriptor protovalidate enforces."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
RELEASE = ROOT / "api" / "v0.1.0.binpb"
sys.path.insert(0, str(ROOT / "scripts"))

from gen_proto import upstream_validate_descriptor  # noqa: E402


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        pytest.fail("the buf CLI is required (scripts/dev.sh installs it from npm into tools/buf)")
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_buf_lint_passes() -> None:
    done = buf("lint")
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_breaking_change_against_the_last_release() -> None:
    done = buf("breaking", "--against", str(RELEASE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_breaking_check_catches_a_renumbered_field(tmp_path: Path) -> None:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    payments = tmp_path / "proto" / "vnegov" / "payments" / "v1" / "payments.proto"
    text = payments.read_text()
    changed = re.sub(r"(string request_id = )1\b", r"\g<1>99", text, count=1)
    assert changed != text
    payments.write_text(changed)
    done = buf("breaking", "--against", str(RELEASE), cwd=tmp_path)
    assert done.returncode != 0
    assert "request_id" in done.stdout and "payments.proto" in done.stdout, done.stdout


def test_the_lint_catches_a_badly_named_field(tmp_path: Path) -> None:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    errors = tmp_path / "proto" / "vnegov" / "common" / "v1" / "pagination.proto"
    errors.write_text(errors.read_text() + "\nmessage Bad {\n  string BadName = 1;\n}\n")
    done = buf("lint", cwd=tmp_path)
    assert done.returncode != 0
    assert "BadName" in done.stdout, done.stdout


def _options(proto: Path) -> dict[str, str]:
    return {name: quoted or bare for name, quoted, bare
            in re.findall(r'^option (\w+) = (?:"([^"]*)"|(\w+));', proto.read_text(), re.M)}


def test_every_file_names_its_package_for_java_csharp_and_go() -> None:
    files = sorted((ROOT / "proto" / "vnegov").rglob("*.proto"))
    assert len(files) >= 8
    for proto in files:
        package = re.search(r"^package ([\w.]+);", proto.read_text(), re.M).group(1)  # type: ignore[union-attr]
        parts = package.split(".")
        assert _options(proto) == {
            "csharp_namespace": ".".join(p.capitalize() for p in parts),
            "go_package": f"vnegov.gov.vn/api/gen/go/{'/'.join(parts)};{parts[-2]}{parts[-1]}",
            "java_multiple_files": "true",
            "java_package": f"vn.{package}",
        }, proto


def test_vendored_validate_proto_is_current() -> None:
    done = subprocess.run([sys.executable, "scripts/vendor_validate_proto.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_vendored_validate_proto_compiles_to_the_descriptor_protovalidate_enforces(
        tmp_path: Path) -> None:
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    out = tmp_path / "validate.binpb"
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={ROOT / 'proto'}",
         f"--proto_path={wkt}", f"--descriptor_set_out={out}", "buf/validate/validate.proto"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    assert compiled == upstream_validate_descriptor()


def test_debian_protoc_compiles_the_whole_module(tmp_path: Path) -> None:
    """The protoc other languages' toolchains use (Debian's, not grpcio-tools') accepts every file,
    the vendored validation rules included."""
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.fail("protoc is required (Debian protobuf-compiler; scripts/dev.sh installs it)")
    files = [str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")]
    done = subprocess.run([protoc, "--proto_path=proto", f"--descriptor_set_out={tmp_path / 'all.binpb'}",
                           *files], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
