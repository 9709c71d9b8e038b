"""Co-signing at every level: the full 4x4 matrix of (first signer's level, second signer's
level) and a three-signer document, each judged by this project's verifier, pyHanko's own
AdES validator CLI and poppler's pdfsig. Every earlier signature must stay valid whatever the
later signer adds (validation data, document time-stamps).

The documents are made once per session, in parallel threads (a long-term signature waits a
grace period before collecting revocation data; the waits overlap)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.documents.transport import HttpTimeStampTransport
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf
from signing.sign.revocation import TrustSettings
from signing.sign.signers import KeySigner
from signing.validate import Indication, validate_pdf
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf

PYHANKO = str(Path(sys.executable).parent / "pyhanko")
LEVELS = list(PadesLevel)
PAIRS = [(a, b) for a in LEVELS for b in LEVELS]
THREE = (("deputy", PadesLevel.B_LT), ("official", PadesLevel.B_LTA),
         ("agency", PadesLevel.B_LTA))


def _sign(signers: dict[str, KeySigner], data: bytes, label: str, level: PadesLevel,
          tsa: HttpTimeStampTransport, trust: TrustSettings) -> bytes:
    out = io.BytesIO()
    sign_pdf(io.BytesIO(data), out, signers[label],
             at=dt.datetime.now(dt.UTC), options=PadesOptions(level=level), timestamps=tsa,
             trust=trust)
    return out.getvalue()


@pytest.fixture(scope="session")
def cosigned(doc_pki: DocumentPki, tsa: HttpTimeStampTransport, trust: TrustSettings,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cosigned")
    original = decision_pdf()
    # Built here, not in the threads: certomancer builds its certificates lazily.
    signers = {label: KeySigner(cred.key, cred.cert, cred.chain) for label in
               ("official", "agency", "deputy") if (cred := doc_pki.credential(label))}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        first = dict(zip(LEVELS, pool.map(
            lambda level: _sign(signers, original, "official", level, tsa, trust), LEVELS),
            strict=True))
        second = pool.map(lambda pair: _sign(signers, first[pair[0]], "agency", pair[1], tsa,
                                             trust), PAIRS)

        def three() -> bytes:
            data = original
            for label, level in THREE:
                data = _sign(signers, data, label, level, tsa, trust)
            return data

        third = pool.submit(three)
        files = {}
        for (a, b), data in zip(PAIRS, second, strict=True):
            path = directory / f"{a.value}+{b.value}.pdf"
            path.write_bytes(data)
            files[f"{a.value}+{b.value}"] = path
        path = directory / "three.pdf"
        path.write_bytes(third.result())
        files["three"] = path
    return files


@pytest.fixture(scope="module")
def pyhanko_verdicts(cosigned: dict[str, Path], doc_pki: DocumentPki,
                     tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pyHanko's AdES validator CLI on every file, a few processes at a time."""
    directory = tmp_path_factory.mktemp("pyhanko-cli")
    root = directory / "root.pem"
    root.write_bytes(doc_pki.pem("root"))
    env = {**os.environ, "XDG_CACHE_HOME": str(directory / "cache"), "HOME": str(directory)}

    def run(path: Path) -> str:
        done = subprocess.run([PYHANKO, "sign", "adesverify", "--trust", str(root),
                               "--trust-replace", "--executive-summary", str(path)],
                              capture_output=True, text=True, timeout=180, env=env)
        return done.stdout + f"\nexit {done.returncode}\n" + done.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cosigned, pool.map(run, cosigned.values()), strict=True))


@pytest.mark.parametrize("name", [f"{a.value}+{b.value}" for a, b in PAIRS] + ["three"])
def test_every_signature_passes_in_all_three_validators(
        cosigned: dict[str, Path], trust: TrustSettings, nssdb: str,
        pyhanko_verdicts: dict[str, str], name: str) -> None:
    path = cosigned[name]
    expected = 3 if name == "three" else 2
    # this project's verifier
    with path.open("rb") as f:
        report = validate_pdf(f, trust=trust, at=dt.datetime.now(dt.UTC))
    assert len(report.signatures) == expected
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    assert all(s.modifications in (None, "NONE", "LTA_UPDATES", "FORM_FILLING")
               for s in report.signatures), report.to_text()
    # pyHanko's own CLI: one VALID line per signature, exit status 0
    verdict = pyhanko_verdicts[name]
    assert "exit 0" in verdict, verdict
    assert sum(line.endswith(":VALID") for line in verdict.splitlines()) == expected, verdict
    assert "INVALID" not in verdict and "ILLEGAL_MODIFICATIONS" not in verdict, verdict
    # poppler's pdfsig (NSS): every signature valid and trusted (pdfsig does not verify
    # document time-stamps: "Signature has not yet been verified")
    done = subprocess.run(["pdfsig", "-nssdir", nssdb, str(path)], capture_output=True,
                          text=True)
    blocks = [b for b in done.stdout.split("Signature #")[1:] if "ETSI.CAdES.detached" in b]
    assert len(blocks) == expected, done.stdout
    for block in blocks:
        assert "Signature is Valid." in block, done.stdout
        assert "Certificate is Trusted." in block, done.stdout
