"""`vnegov ca` on a data directory made by `vnegov init` (the embedded deployment): the CA runs on
the development PKI's encrypted file keys; issue, status, revoke, CRL, report, plan."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from server.cli import main
from tests.server.ca.conftest import csr_for


def run(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), *args], environ={})
    out = capsys.readouterr()
    return code, out.out, out.err


def test_operator_commands_on_the_development_pki(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert run(capsys, data, "init", "--http-port", "18099")[0] == 0
    (tmp_path / "req.pem").write_bytes(csr_for(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "subject.yaml").write_text(yaml.safe_dump({
        "system_name": "mot-cua-phuong-ben-thanh", "parent_body": "UBND Phường Bến Thành",
        "agency_code": "000.40.01.H29", "province_code": "79",
        "dns_names": ["motcua.benthanh.hochiminhcity.gov.vn"]}, allow_unicode=True),
        encoding="utf-8")
    code, out, err = run(capsys, data, "ca", "issue", "--profile", "device", "--csr",
                         str(tmp_path / "req.pem"), "--subject", str(tmp_path / "subject.yaml"),
                         "--managing-body", "000.00.00.H29", "--out", str(tmp_path / "c.pem"))
    assert code == 0, err
    issued = json.loads(out)
    assert issued["state"] == "completed"
    name = issued["result_certificate"]
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    pki = data / "pki"
    # The development PKI's own certificates were imported: the CA knows them.
    code, out, _ = run(capsys, data, "ca", "status", "--serial",
                       format(x509.load_pem_x509_certificate(
                           (pki / "server.pem").read_bytes()).serial_number, "x"))
    assert code == 0 and json.loads(out)["status"] == "valid"

    code, out, _ = run(capsys, data, "ca", "revoke", name, "--reason", "keyCompromise")
    assert code == 0 and json.loads(out)["state"] == "completed"
    code, out, _ = run(capsys, data, "ca", "status", name)
    status = json.loads(out)
    assert status["status"] == "revoked" and status["reason"] == "keyCompromise"
    code, out, _ = run(capsys, data, "ca", "revoke", name, "--reason", "superseded")
    assert code == 1 and json.loads(out)["rejection"].startswith("ALREADY_REVOKED")

    code, out, _ = run(capsys, data, "ca", "crl", "--out", str(tmp_path / "crls"))
    assert code == 0
    crls = tmp_path / "crls"
    bundle = tmp_path / "crls.pem"
    bundle.write_bytes(b"".join(x509.load_der_x509_crl((crls / f"{n}.crl").read_bytes())
                                .public_bytes(__import__(
                                    "cryptography.hazmat.primitives.serialization",
                                    fromlist=["Encoding"]).Encoding.PEM)
                                for n in ("root-ca", "issuing-ca")))
    (tmp_path / "leaf.pem").write_bytes((tmp_path / "c.pem").read_bytes())
    done = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all", "-CAfile",
                           pki / "root-ca.pem", "-untrusted", pki / "issuing-ca.pem",
                           "-CRLfile", bundle, tmp_path / "leaf.pem"],
                          capture_output=True, text=True)
    assert "error 23" in done.stdout + done.stderr
    client = subprocess.run(["openssl", "verify", "-x509_strict", "-crl_check_all", "-CAfile",
                             pki / "root-ca.pem", "-untrusted", pki / "issuing-ca.pem",
                             "-CRLfile", bundle, pki / "clients" / "dvc-hcm.pem"],
                            capture_output=True, text=True)
    assert ": OK" in client.stdout, client.stdout + client.stderr
    assert cert.serial_number

    code, out, _ = run(capsys, data, "ca", "status", "--requests")
    report = json.loads(out)
    assert report["target_working_days"] == 3
    assert report["by_kind"]["issue"]["within_target"] == 1
    assert report["by_kind"]["revoke"]["rejected"] == 1

    (tmp_path / "map.yaml").write_text(yaml.safe_dump({
        "reference": "test", "effective_date": "2025-07-01", "changes": [{
            "old_agency_code": "000.00.00.H26", "new_agency_code": "000.00.01.H26"}]}))
    code, out, err = run(capsys, data, "ca", "reorg", "plan", str(tmp_path / "map.yaml"))
    assert code == 0
    planned = [json.loads(line) for line in out.splitlines()]
    # The sample Hà Nội system's client certificate and the Hà Nội agency's seal.
    assert len(planned) == 2 and {p["action"] for p in planned} == {"reissue"}
    assert json.loads(err.strip().splitlines()[-1])["total"] == 2


def test_renew_rekey_modify_hold_and_release_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert run(capsys, data, "init", "--http-port", "18098")[0] == 0
    for name in ("first", "second"):
        (tmp_path / f"{name}.pem").write_bytes(csr_for(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "subject.yaml").write_text(yaml.safe_dump({
        "full_name": "Trần Thị Bình", "title": "Chuyên viên", "unit": "Phòng Tư pháp",
        "parent_body": "UBND Phường Bến Thành", "agency_code": "000.40.01.H29",
        "province_code": "79", "personal_id": "079190000123"}, allow_unicode=True),
        encoding="utf-8")

    def ok(*args: str) -> dict[str, str]:
        code, out, err = run(capsys, data, "ca", *args)
        assert code == 0, out + err
        result: dict[str, str] = json.loads(out)
        return result

    def status(name: str) -> dict[str, str]:
        return ok("status", name)

    issued = ok("issue", "--profile", "individual", "--csr", str(tmp_path / "first.pem"),
                "--subject", str(tmp_path / "subject.yaml"), "--managing-body",
                "000.00.00.H29", "--validity-days", "365")
    first = issued["result_certificate"]
    renewed = ok("renew", first, "--extension-days", "30")
    assert renewed["kind"] == "renew" and renewed["state"] == "completed"
    second = renewed["result_certificate"]
    assert status(first)["status"] == "valid" and status(first)["superseded_by"] == second
    assert status(second)["not_after"] > status(first)["not_after"]

    rekeyed = ok("rekey", second, "--csr", str(tmp_path / "second.pem"))
    third = rekeyed["result_certificate"]
    assert status(second)["status"] == "revoked" and status(second)["reason"] == "superseded"
    modified = ok("modify", third, "--set", "title=Phó Trưởng phòng")
    fourth = modified["result_certificate"]
    assert "Phó Trưởng phòng" in status(fourth)["subject"]
    assert status(third)["reason"] == "superseded" and status(third)["superseded_by"] == fourth

    assert ok("revoke", fourth, "--reason", "certificateHold")["kind"] == "hold"
    assert status(fourth)["status"] == "on_hold"
    assert ok("revoke", fourth, "--release")["kind"] == "release"
    assert status(fourth)["status"] == "valid"
    code, out, _ = run(capsys, data, "ca", "revoke", fourth, "--release")
    assert code == 1 and json.loads(out)["rejection"].startswith("NOT_ON_HOLD")
