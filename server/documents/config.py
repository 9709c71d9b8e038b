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

    [[documents.signers]]            # an agency's key: used when that agency's systems call
    name = "ubnd-hcm"
    agency_code = "000.00.00.H29"
    certificate_file = "pki/ubnd-hcm.pem"      # chain, signer first
    key_label = "ubnd-hcm"                     # in the token; or key_file (+ passphrase file)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import ConfigError

__all__ = ["AgencySignerConfig", "DocumentsConfig"]

DEFAULT_FONT = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"


@dataclass(frozen=True, slots=True)
class AgencySignerConfig:
    name: str
    agency_code: str
    certificate_file: str
    key_label: str = ""
    key_file: str = ""
    key_passphrase_file: str = ""


@dataclass(frozen=True, slots=True)
class DocumentsConfig:
    tsa_url: str = ""
    trust_roots: tuple[str, ...] = ()
    allow_fetching: bool = True
    font_file: str = DEFAULT_FONT
    token_module: str = ""
    token_label: str = ""
    token_pin_file: str = ""
    signers: tuple[AgencySignerConfig, ...] = field(default=())
    sad_lifetime_seconds: int = 300
    max_document_mib: int = 256

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, base_dir: Path | None = None
                    ) -> DocumentsConfig:
        base = base_dir or Path.cwd()
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"unknown configuration key 'documents.{key}'",
                                  f"documents.{key}")
            values[key] = value
        if "signers" in values:
            values["signers"] = tuple(_signer(i, s, base) for i, s in enumerate(values["signers"]))
        for key in ("trust_roots",):
            if key in values:
                if not isinstance(values[key], list | tuple):
                    raise ConfigError(f"documents.{key} must be a list", f"documents.{key}")
                values[key] = tuple(_path(base, str(v)) for v in values[key])
        for key in ("font_file", "token_pin_file"):
            if values.get(key):
                values[key] = _path(base, str(values[key]))
        for key, kind in (("allow_fetching", bool), ("sad_lifetime_seconds", int),
                          ("max_document_mib", int)):
            if key in values and not isinstance(values[key], kind):
                raise ConfigError(f"documents.{key} has the wrong type", f"documents.{key}")
        config = cls(**values)
        if config.sad_lifetime_seconds < 10 or config.sad_lifetime_seconds > 3600:
            raise ConfigError("documents.sad_lifetime_seconds must be between 10 and 3600",
                              "documents.sad_lifetime_seconds")
        return config


def _path(base: Path, value: str) -> str:
    return str((base / value).resolve()) if value else value


def _signer(index: int, data: Any, base: Path) -> AgencySignerConfig:
    key = f"documents.signers[{index}]"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key} must be a table", key)
    known = {f.name for f in dataclasses.fields(AgencySignerConfig)}
    for name in data:
        if name not in known:
            raise ConfigError(f"unknown configuration key '{key}.{name}'", f"{key}.{name}")
    try:
        signer = AgencySignerConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}", key) from None
    if bool(signer.key_label) == bool(signer.key_file):
        raise ConfigError(f"{key} needs exactly one of key_label and key_file", key)
    return dataclasses.replace(
        signer, certificate_file=_path(base, signer.certificate_file),
        key_file=_path(base, signer.key_file),
        key_passphrase_file=_path(base, signer.key_passphrase_file))
