"""The ``[documents]`` configuration section: TSA, trust anchors, the token holding signing keys,
the agencies' own signing keys, and the appearance font.

Relative paths are resolved against the data directory. Unknown keys are errors naming the key.

    [documents]
    tsa_url = "http://127.0.0.1:8080/tsa"
    trust_roots = ["pki/root-ca.pem"]
    font_file = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"
    token_module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "vnegov"
    token_pin_file = "secrets/token-pin"
    softhsm2_conf = "softhsm/softhsm2.conf"    # SoftHSM2 only: its SOFTHSM2_CONF (vnegov init)

    [documents.budget]               # per document; over budget is INVALID_ARGUMENT naming it
    max_bytes = 268435456
    xml_max_bytes = 16777216
    pdf_objects = 500000
    xml_elements = 200000
    max_depth = 64
    cpu_seconds = 60.0

    [[documents.signers]]            # an agency's key: used when that agency's systems call
    name = "ubnd-hcm"
    agency_code = "000.00.00.H29"
    certificate_file = "pki/ubnd-hcm.pem"      # chain, signer first
    key_label = "ubnd-hcm"                     # in the token; or key_file (+ passphrase file)
    certify_first = 2      # certify documents this key signs first (DocMDP P=2); 0: never
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import ConfigError, build_section
from signing.budget import DocumentBudget

__all__ = ["AgencySignerConfig", "DocumentsConfig"]

# Settings that name files: resolved against the data directory.
_PATHS = frozenset({"trust_roots", "font_file", "token_pin_file", "certificate_file", "key_file",
                    "key_passphrase_file", "softhsm2_conf"})

DEFAULT_FONT = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"


@dataclass(frozen=True, slots=True)
class AgencySignerConfig:
    name: str
    agency_code: str
    certificate_file: str
    key_label: str = ""
    key_file: str = ""
    key_passphrase_file: str = ""
    certify_first: int = 0  # DocMDP P (1-3) of a certification when it signs first; 0: none


@dataclass(frozen=True, slots=True)
class DocumentsConfig:
    tsa_url: str = ""
    trust_roots: tuple[str, ...] = ()
    allow_fetching: bool = True
    font_file: str = DEFAULT_FONT
    token_module: str = ""
    token_label: str = ""
    token_pin_file: str = ""
    softhsm2_conf: str = ""
    signers: tuple[AgencySignerConfig, ...] = field(default=())
    sad_lifetime_seconds: int = 300
    max_document_mib: int = 256
    # What one document may cost (signing.budget): bytes, objects or elements, nesting, CPU time.
    budget: DocumentBudget = field(default_factory=DocumentBudget)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, base_dir: Path | None = None
                    ) -> DocumentsConfig:
        config = build_section(cls, data, "documents", base_dir=base_dir or Path.cwd(),
                               paths=_PATHS)
        for i, signer in enumerate(config.signers):
            if bool(signer.key_label) == bool(signer.key_file):
                key = f"documents.signers[{i}]"
                raise ConfigError(f"{key} needs exactly one of key_label and key_file", key)
            if signer.certify_first not in (0, 1, 2, 3):
                key = f"documents.signers[{i}].certify_first"
                raise ConfigError(f"{key} must be 0 (never) or a DocMDP permission 1, 2 or 3", key)
        if config.sad_lifetime_seconds < 10 or config.sad_lifetime_seconds > 3600:
            raise ConfigError("documents.sad_lifetime_seconds must be between 10 and 3600",
                              "documents.sad_lifetime_seconds")
        return config
