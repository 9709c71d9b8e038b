"""The example provincial web application (examples/provincial_app.py), served on loopback in a
thread: the relying parties of the single-sign-on and logout tests."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

from tests.server.identity.harness import IdentityServer, private_pem
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[3]


def example_module() -> ModuleType:
    name = "provincial_app_example"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "provincial_app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class ProvincialApp:
    def __init__(self, client_id: str, title: str) -> None:
        self.client_id = client_id
        self.title = title
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.state: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def register(self, idp: IdentityServer) -> dict[str, Any]:
        c = idp.client(self.client_id, redirect=self.base + "/callback",
                       logout_uri=self.base + "/backchannel-logout")
        return idp.fapi_metadata(c, client_name=self.title)

    def start(self, idp: IdentityServer) -> None:
        example = example_module()
        c = idp.registered[self.client_id]
        self.state = example.make_state(issuer=idp.issuer, client_id=self.client_id, kid=c.kid,
                                        key_pem=private_pem(c.key), base_url=self.base,
                                        title=self.title)
        config = uvicorn.Config(example.build_app(self.state), host="127.0.0.1", port=self.port,
                                log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name=f"app-{self.client_id}")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the example app did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(20)
        if self.state is not None:
            self.state.rp.transport.close()
