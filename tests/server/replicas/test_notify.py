"""Changes reach every replica at once by LISTEN/NOTIFY: two server processes on one PostgreSQL;
a client disabled through one is refused by the other within one second (the cache it used to
wait for expires after 30 s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import grpc
import pytest

from server.identity.state import ClientDirectory
from server.storage.db import Database
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki, pem
from tests.support.server import ServerProcess, free_port, server_config_dict
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.oauth2.clients import Client

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENT = {
    "client_id": "dvc-binh-duong", "client_name": "Cổng DVC Bình Dương", "profile": "fapi2",
    "redirect_uris": ["https://dvc.example.vn/cb"], "agency_code": "000.00.00.H29",
    "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
                       "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                       "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
    "scope": "openid profile", "claim_profile": "national_portal",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def replica(pki: TestPki, directory: Path, url: str) -> ServerProcess:
    directory.mkdir()
    config = server_config_dict(pki, directory, url, grpc_port=free_port(),
                                http_port=free_port())
    return ServerProcess(config, directory)


async def profile_code(stub: identity_pb2_grpc.IdentityServiceStub) -> grpc.StatusCode:
    try:
        await stub.GetCitizenProfile(pb.GetCitizenProfileRequest(
            client_id=CLIENT["client_id"], subject="nobody-here"))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_a_client_disabled_through_one_replica_is_refused_by_the_other_within_a_second(
        pki: TestPki, postgres_templates: PostgresTemplates, tmp_path: Path) -> None:
    url = postgres_templates.new_database()
    db = Database(url)
    a, b = replica(pki, tmp_path / "a", url), replica(pki, tmp_path / "b", url)
    try:
        ClientDirectory.save(db, Client.from_metadata(CLIENT), _now(), actor="operator")
        a.start()
        b.start()
        creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                             pki.hcm.chain_pem)
        async with grpc.aio.secure_channel(f"localhost:{a.grpc_port}", creds) as ch_a, \
                grpc.aio.secure_channel(f"localhost:{b.grpc_port}", creds) as ch_b:
            stub_a = identity_pb2_grpc.IdentityServiceStub(ch_a)
            stub_b = identity_pb2_grpc.IdentityServiceStub(ch_b)
            # Both replicas know the client (and cache it): its agency may ask, nothing is found.
            assert await profile_code(stub_a) == grpc.StatusCode.NOT_FOUND
            assert await profile_code(stub_b) == grpc.StatusCode.NOT_FOUND
            # The operator disables it (what `vnegov identity client disable` does, on host A).
            assert ClientDirectory.disable(db, CLIENT["client_id"], _now(), actor="operator")
            committed = time.monotonic()
            elapsed: dict[str, float] = {}
            while len(elapsed) < 2 and time.monotonic() - committed < 5:
                for name, stub in (("a", stub_a), ("b", stub_b)):
                    if name not in elapsed and \
                            await profile_code(stub) == grpc.StatusCode.PERMISSION_DENIED:
                        elapsed[name] = time.monotonic() - committed
                await asyncio.sleep(0.005)
            print(f"client refused after: replica a {elapsed.get('a', -1) * 1000:.0f} ms, "
                  f"replica b {elapsed.get('b', -1) * 1000:.0f} ms")
            assert set(elapsed) == {"a", "b"} and max(elapsed.values()) < 1.0
    finally:
        a.kill()
        b.kill()
        db.dispose()
