from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Config, ConfigError, load_config


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "vnegov.toml"
    path.write_text('data_dir = "d"\n[tls]\ncert_file = "pki/server.pem"\n'
                    'client_ca_files = ["a.pem", "b.pem"]\n')
    config = load_config(path, {})
    assert config.data_dir == str(tmp_path / "d")
    assert config.tls.cert_file == str(tmp_path / "pki" / "server.pem")
    assert config.tls.client_ca_files == (str(tmp_path / "a.pem"), str(tmp_path / "b.pem"))
    assert config.storage.url == f"sqlite:///{tmp_path / 'd' / 'vnegov.db'}"
    assert config.server.plaintext is False


def test_environment_overrides_are_typed(tmp_path: Path) -> None:
    config = load_config(None, {
        "VNEGOV__DATA_DIR": str(tmp_path), "VNEGOV__SERVER__GRPC_PORT": "50099",
        "VNEGOV__SERVER__PLAINTEXT": "true", "VNEGOV__TLS__CLIENT_CA_FILES": "/a.pem, /b.pem",
        "VNEGOV__STORAGE__URL": "postgresql+psycopg://u@h/db", "UNRELATED": "x",
    })
    assert config.server.grpc_port == 50099 and config.server.plaintext is True
    assert config.tls.client_ca_files == ("/a.pem", "/b.pem")
    assert config.storage.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("data,message", [
    ({"sever": {}}, "unknown configuration key 'sever'"),
    ({"server": {"grpc_prot": 1}}, "unknown configuration key 'server.grpc_prot'"),
    ({"auth": {"callers": [{"agency_code": "x", "scope": []}]}},
     "unknown configuration key 'auth.callers[0].scope'"),
    ({"server": {"grpc_port": "fifty"}}, "'server.grpc_port' must be an integer"),
    ({"server": {"plaintext": "maybe"}}, "'server.plaintext' must be true or false"),
    ({"logging": {"format": "xml"}}, "logging.format must be"),
    ({"server": {"event_loop": "trio"}}, "server.event_loop must be 'uvloop' or 'asyncio'"),
    ({"server": 5}, "server must be a table"),
])
def test_errors_name_the_key(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as err:
        Config.from_config(data)
    assert message in str(err.value)


def test_domain_sections_pass_through_for_their_modules() -> None:
    config = Config.from_config({"payments": {"currency": "VND"}})
    assert config.extensions == {"payments": {"currency": "VND"}}


def test_config_is_frozen() -> None:
    config = Config.from_config({})
    with pytest.raises(AttributeError):
        config.server.grpc_port = 1  # type: ignore[misc]


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, {})


def test_module_sections_are_typed_like_the_core(tmp_path: Path) -> None:
    """Environment overrides reach module sections as strings; each section converts them to its
    fields' types, rejects unknown keys at any depth and resolves file paths like the core."""
    from server.identity.config import IdentityConfig
    from server.payments.config import PaymentsConfig

    config = load_config(None, {
        "VNEGOV__DATA_DIR": str(tmp_path), "VNEGOV__IDENTITY__ENABLED": "false",
        "VNEGOV__IDENTITY__HTTP_THREADS": "2", "VNEGOV__PAYMENTS__PAYMENT_TTL_MINUTES": "45",
        "VNEGOV__PAYMENTS__WORKERS_ENABLED": "no",
        "VNEGOV__PAYMENTS__CATALOGUE_FILES": "fees/hcm.yaml, fees/hanoi.yaml",
    })
    identity = IdentityConfig.from_config(config.extensions["identity"],
                                          public_url="http://127.0.0.1:8080")
    assert identity.enabled is False and identity.http_threads == 2
    payments = PaymentsConfig.from_config(config.extensions["payments"], base_dir=tmp_path)
    assert payments.payment_ttl_minutes == 45 and payments.workers_enabled is False
    assert payments.catalogue_files == (str(tmp_path / "fees" / "hcm.yaml"),
                                        str(tmp_path / "fees" / "hanoi.yaml"))
    with pytest.raises(ConfigError, match="'payments.organisations\\[0\\].key_fil'"):
        PaymentsConfig.from_config({"organisations": [{
            "agency_code": "000.00.00.H29", "name": "x", "tax_code": "1", "address": "a",
            "key_fil": "k.pem"}]}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="'payments.payment_ttl_minutes' must be an integer"):
        PaymentsConfig.from_config({"payment_ttl_minutes": "soon"}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="'identity.enabled' must be true or false"):
        IdentityConfig.from_config({"enabled": "maybe"}, public_url="http://127.0.0.1:8080")


def test_boolean_overrides_are_parsed_strictly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.config import ConfigError, load_config
    from vnid.errors import InvalidInput
    from vnid.oidc.settings import ProviderSettings

    env = {"VNEGOV__IDENTITY__DPOP_REQUIRE_NONCE": "false", "VNEGOV__DATA_DIR": str(tmp_path)}
    config = load_config(None, env)
    settings = ProviderSettings.from_config(dict(config.extensions["identity"]),
                                            default_issuer="https://id.example/id")
    assert settings.dpop_require_nonce is False
    import pytest

    with pytest.raises(InvalidInput, match="dpop_require_nonce"):
        ProviderSettings.from_config({"dpop_require_nonce": "flase"},
                                     default_issuer="https://id.example/id")
    with pytest.raises(ConfigError, match="VNEGOV__SERVER__PLAINTEXT"):
        load_config(None, {**env, "VNEGOV__SERVER__PLAINTEXT": "nope"})
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(None, {**env, "VNEGOV__SERVER__GRPC_PORT": "50051.5"})
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(None, {**env, "VNEGOV__SERVER__SHUTDOWN_GRACE_SECONDS": "nan"})
    limits = load_config(None, {**env, "VNEGOV__LIMITS__HTTP__CALLBACK__RATE_PER_SECOND": "5"})
    assert limits.limits.http.callback.rate_per_second == 5.0
    assert limits.limits.http.callback.body_bytes == 8 * 1024  # the class's own default kept
