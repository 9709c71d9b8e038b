#!/usr/bin/env python3
"""OCSP responses per second: signed (a nonce in every request, so each answer is signed) and
served from the cache (nonce-free requests, RFC 5019 style), beside cryptography's own
OCSPResponseBuilder signing the same answer, measured in the same run.

    .venv/bin/python benchmarks/ca_ocsp.py [--seconds 5] [--connections 32]

Three levels:
  library  one thread calling the responder (parse with asn1crypto, look up, encode, sign)
  http     the running server (``vnegov serve``) driven by h2load (C, HTTP/1.1 keep-alive);
           "per core" divides by the server's measured CPU time
  baseline cryptography's OCSPResponseBuilder + sign, one thread (what the library must beat or
           approach; it cannot even parse multi-certificate requests)
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent),
                str(Path(__file__).resolve().parent.parent / "gen" / "python")]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

from benchmarks._ca_server import BenchServer  # noqa: E402
from signing.ca import (  # noqa: E402
    OcspResponder,
    ResponderIdentity,
    ResponseCache,
    StatusIndex,
    load_private_key,
)


def rate(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def h2load(url: str, seconds: float, connections: int, data: Path | None = None) -> float:
    cmd = ["h2load", "--h1", "-c", str(connections), "-m", "1", "-D", str(int(seconds)),
           "--warm-up-time", "1", url]
    if data is not None:
        cmd[1:1] = ["-d", str(data), "-H", "content-type: application/ocsp-request"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    status = re.search(r"status codes: (\d+) 2xx", out)
    if status is None or int(status.group(1)) == 0:
        raise RuntimeError("h2load got no 2xx answers:\n" + out)
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    assert match, out
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    server = BenchServer()
    pki = server.pki
    passphrase = (server.data / "secrets" / "pki-passphrase").read_bytes().strip()
    issuing = x509.load_pem_x509_certificate((pki / "issuing-ca.pem").read_bytes())
    responder_cert = x509.load_pem_x509_certificates((pki / "ocsp-responder.pem").read_bytes())[0]
    responder_key = load_private_key((pki / "ocsp-responder.key.pem").read_bytes(), passphrase)
    leaf = x509.load_pem_x509_certificates((pki / "clients" / "dvc-hcm.pem").read_bytes())[0]
    assert isinstance(responder_key, ec.EllipticCurvePrivateKey)

    def request(nonce: bytes | None) -> bytes:
        builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing, hashes.SHA1())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)

    with_nonce, without_nonce = request(os.urandom(32)), request(None)

    # ---- library, one thread
    index = StatusIndex()
    responder = OcspResponder([ResponderIdentity(issuing, responder_cert, responder_key)],
                              index.lookup)
    key_id = responder.identities[0].issuer_key_id
    index.add_issuer(key_id, issuing.subject)
    index.set_good(key_id, leaf.serial_number)
    now = dt.datetime.now(dt.UTC)
    assert responder.respond(with_nonce, now).cert_statuses == ("good",)
    lib_signed = rate(lambda: responder.respond(with_nonce, now), args.seconds)
    cache = ResponseCache()
    cache.put(without_nonce, responder.respond(without_nonce, now), cache.epoch)
    lib_cached = rate(lambda: cache.get(without_nonce, now), args.seconds)

    # ---- cryptography's builder, one thread (single-certificate requests only)
    def raw() -> bytes:
        parsed = ocsp.load_der_ocsp_request(with_nonce)
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response_by_hash(parsed.issuer_name_hash, parsed.issuer_key_hash,
                                         parsed.serial_number, hashes.SHA1(),
                                         ocsp.OCSPCertStatus.GOOD, now,
                                         now + dt.timedelta(hours=4), None, None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
                   .certificates([responder_cert])
                   .add_extension(parsed.extensions[0].value, critical=False))
        return builder.sign(responder_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER)

    raw_signed = rate(raw, args.seconds)

    # ---- the running server over HTTP
    server.start()
    try:
        with tempfile.NamedTemporaryFile(suffix=".der") as body:
            body.write(with_nonce)
            body.flush()
            cpu0 = server.cpu_seconds()
            t0 = time.perf_counter()
            http_signed = h2load(f"{server.http}/pki/ocsp", args.seconds, args.connections,
                                 Path(body.name))
            elapsed = time.perf_counter() - t0
            signed_cpu = (server.cpu_seconds() - cpu0) / elapsed
        get_url = f"{server.http}/pki/ocsp/" + urllib.parse.quote(
            base64.b64encode(without_nonce).decode(), safe="")
        cpu0 = server.cpu_seconds()
        t0 = time.perf_counter()
        http_cached = h2load(get_url, args.seconds, args.connections)
        elapsed = time.perf_counter() - t0
        cached_cpu = (server.cpu_seconds() - cpu0) / elapsed
    finally:
        server.stop()

    cores = os.cpu_count() or 1
    print(f"OCSP responses per second ({cores} cores, {args.seconds:.0f} s per measurement)")
    print(f"  library, signed (nonce)          {lib_signed:10.0f}/s   one thread")
    print(f"  cryptography builder, signed     {raw_signed:10.0f}/s   one thread  "
          f"(library / cryptography = {lib_signed / raw_signed:.2f})")
    print(f"  library, from cache              {lib_cached:10.0f}/s   one thread")
    print(f"  HTTP, signed (nonce)             {http_signed:10.0f}/s   server used "
          f"{signed_cpu:.2f} cores -> {http_signed / max(signed_cpu, 1e-9):.0f}/s per core "
          f"(HTTP / cryptography = {http_signed / raw_signed:.2f})")
    print(f"  HTTP, from cache (GET)           {http_cached:10.0f}/s   server used "
          f"{cached_cpu:.2f} cores -> {http_cached / max(cached_cpu, 1e-9):.0f}/s per core")
    print("targets: >= 1,000 signed/s per core; >= 10,000/s from the cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
