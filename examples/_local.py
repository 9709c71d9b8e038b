"""Where the examples find the local server: the data directory's own configuration (what
`vnegov init` wrote, with the same VNEGOV__... environment overrides `vnegov serve` applies), so
an example reaches the server wherever it was started, not a fixed 50051/8080."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Local:
    data_dir: Path
    target: str  # gRPC host:port, with the server certificate's name (localhost)
    http: str  # the public URL of the HTTP side
    tsa_url: str  # documents.tsa_url

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"


def local(data_dir: Path | str | None = None) -> Local:
    """The settings of ``data_dir`` (default: $VNEGOV_DATA_DIR, else ./data)."""
    from server.cli import load_config

    directory = Path(data_dir or os.environ.get("VNEGOV_DATA_DIR") or "data").resolve()
    if not (directory / "vnegov.toml").exists():
        # A directory with only the certificates (copied from a server): the defaults, which
        # --target and --http override.
        return Local(directory, "localhost:50051", "http://127.0.0.1:8080",
                     "http://127.0.0.1:8080/pki/tsa")
    config = load_config(directory / "vnegov.toml", os.environ)
    host = config.server.grpc_host
    host = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0", "::", "") else host
    documents = config.extensions.get("documents", {})
    public_url = config.server.public_url.rstrip("/")
    return Local(directory, f"{host}:{config.server.grpc_port}", public_url,
                 str(documents.get("tsa_url") or f"{public_url}/pki/tsa"))
