"""SoftHSM2 tokens for tests.

SoftHSM2 reads ``SOFTHSM2_CONF`` and its token list once, when the PKCS#11 library is initialised
in a process: tokens created later are not seen. So the session creates its tokens before anything
loads the library, and tests keep apart by key labels (``unique_label``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "123456"
SO_PIN = "12345678"


class SoftHsm:
    def __init__(self, directory: Path) -> None:
        if not Path(MODULE).exists() or shutil.which("softhsm2-util") is None:
            pytest.fail("SoftHSM2 is not installed (scripts/dev.sh installs softhsm2)")
        self.directory = directory
        (directory / "tokens").mkdir(parents=True, exist_ok=True)
        self.conf = directory / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                             "objectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        self.module = MODULE
        self.token_label = self._init_token("vnegov-test")
        self.second_token_label = self._init_token("vnegov-test-2")
        # Never logged in by a passing test: for checks of the PIN itself.
        self.pin_test_token_label = self._init_token("vnegov-pin-test")

    @staticmethod
    def unique_label(prefix: str = "key") -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    def _init_token(self, label: str) -> str:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                        "--pin", USER_PIN, "--so-pin", SO_PIN],
                       check=True, capture_output=True, env={**os.environ,
                                                              "SOFTHSM2_CONF": str(self.conf)})
        return label
