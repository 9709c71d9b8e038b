"""The whole ``vnegov`` command tree, walked from click's command objects (a new command is covered
without touching this file): every command and option has help, and every command given a missing
file, a wrong password, a malformed input and an unreachable server exits with its documented code
(2, 2, 2, 3) and one line on stderr, ``vnegov: <message> [REASON]``, never a traceback.

Nothing here starts a server: "unreachable" is a closed local port, "wrong password" a login the
database refuses and a wrong passphrase for the PKI's keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from server.cli import cli, main
from tests.signing.sign.pdfs import decision_pdf
from tests.support.databases import postgres_admin_url

FIXTURES = Path(__file__).resolve().parents[1] / "payments" / "fixtures"
GARBAGE = b"\x00\xff{[<not what this command reads>]}\xfe\n"
ERROR_LINE = re.compile(r"^vnegov: \S.* \[[A-Z][A-Z0-9_]*\]$")


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                 click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


ALL = list(walk(cli))
LEAVES = {" ".join(path): command for path, command in ALL
          if not isinstance(command, click.Group)}

# Commands that cannot meet a scenario, and why. The test below checks these name real commands.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "missing file": {
        "completion": "reads nothing: prints a script",
    },
    "wrong password": {
        "completion": "reads nothing: prints a script",
        "init": "creates its own keys and passphrase; uses no database server",
        "verify": "public data only: no key, no database",
        "ltv status": "reads the archive's files only",
        "ltv extend": "public data and a time-stamping server: no key, no database",
        "receipts verifier-page": "public certificates only",
        "receipts verify": "public data only: no key, no database",
    },
    "unreachable server": {
        "completion": "reads nothing: prints a script",
        "init": "local files and SQLite only",
        "ca token init": "the local token and key files only",
        "documents key-generate": "the local token and the development CA's files only",
        "ltv status": "reads the archive's files only",
        "receipts verifier-page": "writes a page from the certificates given",
        # Responders that cannot be reached: test_verify_with_the_responders_down_says_try_later.
        "verify": "reaches a server only for a signature's revocation data",
        "receipts verify": "reaches a server only for a seal's revocation data",
    },
}

# Commands that read no configuration (their missing-file check is their own files only).
NO_CONFIGURATION = {"completion", "init", "ltv status", "receipts verifier-page"}

# Valid files for the commands that read and check their input before their data: a scenario
# breaks one thing at a time. Other input files get a small text file.
VALID: dict[tuple[str, str], str] = {
    ("ca issue", "csr"): "{csr}", ("ca issue", "subject"): "{subject}",
    ("ca rekey", "csr"): "{csr}",
    ("ca reorg plan", "mapping"): "{mapping}", ("ca reorg run", "mapping"): "{mapping}",
    ("documents credential-add", "cert_file"): "{cert}",
    ("identity client add", "file"): "{client}",
    ("identity passwords import-breached", "file"): "{pwned}",
    ("reconcile", "statements"): "{statement}",
    ("receipts verifier-page", "root"): "{cert}",
    ("ltv extend", "files"): "{signed_pdf}",
}

# Settings a command needs to reach the step where the scenario bites.
ENVIRON: dict[str, dict[str, str]] = {
    "ca token init": {"VNEGOV__CA__KEY_SOURCE": "pkcs11"},
}

# What a command needs beyond its required parameters to get as far as its data.
EXTRA: dict[str, list[str]] = {
    "ca revoke": ["--reason", "keyCompromise"],
    "ca status": ["--requests"],
    "identity evidence verify": ["--all"],
    "documents key-generate": ["--label", "{label}", "--cert-out", "{root}/kg.pem", "--name",
                               "Tree Walk", "--owner", "079084000123"],
    "ltv extend": ["--tsa", "http://127.0.0.1:{closed_port}/tsa", "--trust", "{cert}"],
    "sign": ["--key", "{key}", "--cert", "{cert}", "--key-passphrase-file", "{passphrase}"],
}


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in ALL:
        name = " ".join(("vnegov", *path))
        if not (command.help or command.short_help):
            missing.append(name)
        for param in command.params:
            if not getattr(param, "help", None):
                missing.append(f"{name} {param.human_readable_name}")
    assert not missing, "without help: " + ", ".join(missing)
    assert len(LEAVES) > 40


# Commands that print no result: serve logs, completion prints a shell script.
NO_RESULT = {"serve", "completion"}


def test_every_command_that_prints_a_result_takes_json() -> None:
    without = [path for path, command in LEAVES.items() if path not in NO_RESULT
               and "--json" not in {o for p in command.params for o in p.opts}]
    assert not without, "without --json: " + ", ".join(without)


def test_json_is_one_document(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(setup.config), "identity", "keys", "list", "--json"], {}) == 0
    keys = json.loads(capsys.readouterr().out)
    assert {k["alg"] for k in keys} >= {"ES256"}
    assert main(["--config", str(setup.config), "audit", "verify", "--json"], {}) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_every_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _ in ALL:
        assert main([*path, "--help"], {}) == 0
        out = capsys.readouterr().out
        assert out.startswith("Usage: vnegov"), path


def test_version_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    assert main(["--version"], {}) == 0
    assert capsys.readouterr().out == f"vnegov {importlib.metadata.version('vnegov')}\n"
    assert main(["completion", "bash"], {}) == 0
    assert "_VNEGOV_COMPLETE" in capsys.readouterr().out


def test_the_exceptions_name_real_commands() -> None:
    named = (NO_RESULT | {c for table in NOT_APPLICABLE.values() for c in table} | set(EXTRA) | set(ENVIRON)
             | {c for c, _ in VALID} | NO_CONFIGURATION)
    assert named <= set(LEAVES), named - set(LEAVES)


# ------------------------------------------------------------------------------------ scenarios


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        assert main(["--data-dir", str(self.data), "init"], {}) == 0
        self.config = self.data / "vnegov.toml"
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tree walk")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
        self.key = root / "key.pem"
        self.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"the right passphrase")))
        self.cert = root / "cert.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.passphrase = root / "passphrase"
        self.passphrase.write_text("the right passphrase")
        self.wrong = root / "wrong-passphrase"
        self.wrong.write_text("not the passphrase")
        self.garbage = root / "garbage.pdf"
        self.garbage.write_bytes(GARBAGE)
        self.bad_config = root / "bad.toml"
        self.bad_config.write_bytes(GARBAGE)
        self.missing = root / "no-such-dir" / "missing.file"
        with socket.socket() as s:  # a local port nobody listens on
            s.bind(("127.0.0.1", 0))
            self.closed_port = s.getsockname()[1]
        self.input_file = root / "input.txt"
        self.input_file.write_text("some content\n")
        self.csr = root / "req.pem"
        self.csr.write_bytes(x509.CertificateSigningRequestBuilder().subject_name(name).sign(
            ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM))
        self.subject = root / "subject.yaml"
        self.subject.write_text(yaml.safe_dump({
            "system_name": "tree-walk", "parent_body": "UBND Phường Bến Thành",
            "agency_code": "000.40.01.H29", "province_code": "79",
            "dns_names": ["tree.benthanh.hochiminhcity.gov.vn"]}, allow_unicode=True),
            encoding="utf-8")
        self.mapping = root / "map.yaml"
        self.mapping.write_text(yaml.safe_dump({
            "reference": "tree", "effective_date": "2025-07-01", "changes": [{
                "old_agency_code": "000.00.00.H26", "new_agency_code": "000.00.01.H26"}]}))
        self.client = root / "client.json"
        self.client.write_text(json.dumps({
            "client_id": "tree", "profile": "service", "agency_code": "000.00.00.H29",
            "jwks": {"keys": [json.loads(
                '{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",'
                '"y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}')]}}))
        self.pwned = root / "pwned.txt"
        self.pwned.write_text(hashlib.sha1(b"tree").hexdigest().upper() + ":1\n")
        self.statement = FIXTURES / "camt053_day1.xml"
        (root / "decision.pdf").write_bytes(decision_pdf())
        self.signed_pdf = root / "signed.pdf"
        assert main(["sign", str(root / "decision.pdf"), "--key", str(self.key), "--cert",
                     str(self.cert), "--key-passphrase-file", str(self.passphrase), "--out",
                     str(self.signed_pdf)], {"VNEGOV_DATA_DIR": str(root / "none")}) == 0

    def fill(self, text: str) -> str:
        label = f"tree-{uuid.uuid4().hex[:8]}"  # a new token key label each time
        return text.format(label=label, **{k: str(v) for k, v in vars(self).items()})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return Setup(tmp_path_factory.mktemp("tree"))


def _inputs(command: click.Command) -> list[click.Parameter]:
    """The parameters naming files the command reads."""
    return [p for p in command.params
            if isinstance(p.type, click.Path) and p.type.exists]


def _placeholder(path: str, param: click.Parameter, setup: Setup, input_file: Path | None) -> str:
    kind = param.type
    if isinstance(kind, click.Path):
        if not kind.exists:
            return str(setup.root / "out" / f"{param.name}.out")
        if input_file is not None:
            return str(input_file)
        return setup.fill(VALID.get((path, param.name or ""), "{input_file}"))
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.DateTime):
        return "2025-08-01"
    if isinstance(kind, click.types._NumberParamTypeBase):
        return "1"
    if kind.name == "box":
        return "10,10,100,100"
    if kind.name == "size":
        return "600x240"
    return {"identifier": "079084000123", "redirect_uri": "https://example.test/cb",
            "born": "1984-05-17"}.get(param.name or "", "x1")


def argv(path: str, setup: Setup, *, input_file: Path | None = None,
         override: dict[str, str] | None = None) -> list[str]:
    """``path`` with its required parameters (files: ``input_file``) and ``EXTRA``."""
    command = LEAVES[path]
    override = override or {}
    args: list[str] = []
    options: list[str] = []
    for param in command.params:
        if param.name in override:
            value = override[param.name]
        elif param.required or (isinstance(param, click.Argument) and param in _inputs(command)):
            value = _placeholder(path, param, setup, input_file)
        else:
            continue
        if isinstance(param, click.Argument):
            args.append(value)
        else:
            options += [param.opts[0], value]
    extra = [setup.fill(a) for a in EXTRA.get(path, [])]
    return [*path.split(), *extra, *options, *args]  # options after EXTRA: they win


def run(capsys: pytest.CaptureFixture[str], args: list[str],
        environ: dict[str, str] | None = None) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args, environ or {})
    return code, capsys.readouterr().err


def assert_one_error_line(code: int, err: str, expected: int, what: str) -> None:
    assert "Traceback" not in err, what
    assert code == expected, f"{what}: exit {code}, stderr {err!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"{what}: not one line: {err!r}"
    assert ERROR_LINE.match(err.rstrip("\n")), f"{what}: not the error format: {err!r}"


def applicable(scenario: str) -> list[str]:
    return sorted(p for p in LEAVES if p not in NOT_APPLICABLE.get(scenario, {}))


@pytest.mark.parametrize("path", applicable("missing file"))
def test_a_missing_file_is_an_input_error(path: str, setup: Setup,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if path == "init":  # init reads no file: its data directory cannot be made
        code, err = run(capsys, ["--data-dir", str(setup.garbage / "data"), "init"])
        assert_one_error_line(code, err, 2, "init under a file")
        return
    if path not in NO_CONFIGURATION:  # the configuration file is missing
        code, err = run(capsys, ["--config", str(setup.missing), *argv(path, setup)])
        assert_one_error_line(code, err, 2, f"{path} without its configuration")
        assert str(setup.missing) in err
    # Each file the command reads is missing (the configuration is there).
    for param in _inputs(LEAVES[path]):
        args = argv(path, setup, override={param.name or "": str(setup.missing)})
        if str(setup.missing) not in args:
            args = [*args, param.opts[0], str(setup.missing)]
        code, err = run(capsys, ["--config", str(setup.config), *args])
        assert_one_error_line(code, err, 2, f"{path} {param.human_readable_name} missing")
        assert "missing.file" in err


@pytest.mark.parametrize("path", applicable("malformed input"))
def test_a_malformed_input_is_an_input_error(path: str, setup: Setup,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    command = LEAVES[path]
    if path not in NO_CONFIGURATION:
        code, err = run(capsys, ["--config", str(setup.bad_config), *argv(path, setup)])
        assert_one_error_line(code, err, 2, f"{path} with a malformed configuration")
    # Each file the command reads holds garbage.
    for param in _inputs(command):
        if param.name in ("key_passphrase_file",):
            continue  # any bytes are a passphrase: the wrong-password test covers it
        args = argv(path, setup, override={param.name or "": str(setup.garbage)})
        if str(setup.garbage) not in args:
            args = [*args, param.opts[0], str(setup.garbage)]
        code, err = run(capsys, ["--config", str(setup.config), *args])
        assert_one_error_line(code, err, 2, f"{path} {param.human_readable_name} malformed")
    # Each typed value is malformed.
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and not isinstance(
                param.type, click.Path) and param.type.name != "text":
            args = [*argv(path, setup), param.opts[0], "@@not-a-value@@"]
            code, err = run(capsys, ["--config", str(setup.config), *args])
            assert_one_error_line(code, err, 2, f"{path} {param.opts[0]} malformed")


@pytest.fixture(scope="module")
def postgres_host() -> str:
    """host:port of the test PostgreSQL server: it refuses the login below."""
    url = make_url(postgres_admin_url())
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        message = f"PostgreSQL is not reachable at {host}:{port} ({exc})"
        if os.environ.get("CI"):
            pytest.fail("CI requires PostgreSQL: " + message)
        pytest.skip(message)
    return f"{host}:{port}"


@pytest.mark.postgres
@pytest.mark.parametrize("path", applicable("wrong password"))
def test_a_wrong_password_is_an_input_error(path: str, setup: Setup, postgres_host: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    host = postgres_host
    environ = {
        **ENVIRON.get(path, {}),
        # A login the database refuses, and the wrong passphrase for the PKI's keys.
        "VNEGOV__STORAGE__URL": f"postgresql+psycopg://vnegov_nobody:wrong@{host}/test"
                                "?connect_timeout=3",
        "VNEGOV__PKI__KEY_PASSPHRASE_FILE": str(setup.wrong),
    }
    args = argv(path, setup)
    if path == "sign":
        args = [a if a != str(setup.passphrase) else str(setup.wrong) for a in args]
    code, err = run(capsys, ["--config", str(setup.config), *args], environ)
    assert_one_error_line(code, err, 2, f"{path} with a wrong password")


@pytest.mark.parametrize("path", applicable("unreachable server"))
def test_an_unreachable_server_is_unavailable(path: str, setup: Setup,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    environ = {**ENVIRON.get(path, {}),
               "VNEGOV__STORAGE__URL": f"postgresql+psycopg://vnegov@127.0.0.1:{setup.closed_port}"
                                       "/test?connect_timeout=3"}
    args = argv(path, setup)
    if path == "sign":  # a detached B-T signature needs the time-stamping server
        args = [*args, "--format", "cms", "--level", "B-T", "--tsa",
                f"http://127.0.0.1:{setup.closed_port}/tsa"]
    code, err = run(capsys, ["--config", str(setup.config), *args], environ)
    assert_one_error_line(code, err, 3, f"{path} with the server unreachable")


def test_progress_is_a_bar_on_a_terminal_and_one_line_otherwise(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli.kit import progress

    with progress("signing", 3) as bar:
        for _ in range(3):
            bar.update(advance=1)
    assert capsys.readouterr().err == "signing: 3/3\n"
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    with progress("signing", 3) as bar:
        for _ in range(3):
            bar.update(advance=1, failed=0)
    drawn = capsys.readouterr().err
    assert "signing" in drawn and "3/3" in drawn and "━" in drawn and "failed=0" in drawn
    with progress("signing", 3, enabled=False) as bar:
        bar.update(advance=3)
    assert capsys.readouterr().err == ""
