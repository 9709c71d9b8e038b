"""The committed protobuf code is exactly what scripts/gen_proto.py produces from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_regenerating_protobuf_code_changes_nothing() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_every_proto_package_is_versioned_and_matches_its_directory() -> None:
    for proto in (ROOT / "proto" / "vnegov").rglob("*.proto"):
        rel = proto.relative_to(ROOT / "proto").parent
        package = next(line.split()[1].rstrip(";") for line in proto.read_text().splitlines()
                       if line.startswith("package "))
        assert package == ".".join(rel.parts), f"{proto}: package {package} is not {rel}"
        assert rel.parts[-1].startswith("v") and rel.parts[-1][1:].isdigit(), proto
