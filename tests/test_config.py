"""Configuration from the environment (waauth.config), shared by the library and the command."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import psycopg
import pytest

import waauth
from waauth import Keyring, Settings
from waauth.config import check_conninfo, dsn_from_env


def test_keyring_from_env_reads_the_key_file(tmp_path: Path) -> None:
    """WAAUTH_KEY_FILE (the README's table) is honoured, and wins over WAAUTH_KEYS."""
    in_file, in_env = Keyring.generate_key(), Keyring.generate_key()
    key_file = tmp_path / "keys"
    key_file.write_text(f"# the current key first\n{in_file}\n", encoding="utf-8")
    key_file.chmod(0o600)
    ring = Keyring.from_env({"WAAUTH_KEY_FILE": str(key_file), "WAAUTH_KEYS": in_env})
    assert ring.key_ids == Keyring([in_file]).key_ids


def test_keyring_from_env_takes_os_environ() -> None:
    """Keyring.from_env(os.environ) is accepted (a Mapping; mypy checks this file strictly)."""
    environ: os._Environ[str] = os.environ
    with pytest.MonkeyPatch.context() as patch:
        key = Keyring.generate_key()
        patch.setenv("WAAUTH_KEYS", key)
        patch.delenv("WAAUTH_KEY_FILE", raising=False)
        assert Keyring.from_env(environ).key_ids == Keyring([key]).key_ids


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Like ssh, a key file readable by group or others is reported (a warning, not a refusal)."""
    key = Keyring.generate_key()
    key_file = tmp_path / "keys"
    key_file.write_text(key, encoding="utf-8")
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="waauth"):
        Keyring.from_env({"WAAUTH_KEY_FILE": str(key_file)})
    warned = [r.getMessage() for r in caplog.records if "accessible by others" in r.getMessage()]
    assert warned == [
        f"the key file {str(key_file)!r} is accessible by others (mode 0o644): chmod 600 it"
    ]
    assert key not in caplog.text
    caplog.clear()
    key_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="waauth"):
        Keyring.from_env({"WAAUTH_KEY_FILE": str(key_file)})
    assert not caplog.records


def test_settings_resolve_as_the_command_does(tmp_path: Path) -> None:
    """WAAUTH_DSN, else DATABASE_URL; the schema and key file; no password in the repr."""
    assert dsn_from_env({"DATABASE_URL": "postgresql://a@h/db"}) == "postgresql://a@h/db"
    both = {"WAAUTH_DSN": "postgresql://w@h/db", "DATABASE_URL": "postgresql://d@h/db"}
    assert dsn_from_env(both) == "postgresql://w@h/db"
    assert dsn_from_env({"WAAUTH_DSN": "  ", "DATABASE_URL": ""}) is None
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://bot:s3cret-pw@db.internal:5432/app",
            "WAAUTH_SCHEMA": "bots",
            "WAAUTH_KEY_FILE": str(tmp_path / "keys"),
        }
    )
    assert settings.dsn == "postgresql://bot:s3cret-pw@db.internal:5432/app"
    assert (settings.schema, settings.key_file) == ("bots", tmp_path / "keys")
    assert "s3cret-pw" not in repr(settings)
    key = Keyring.generate_key()
    (tmp_path / "keys").write_text(key, encoding="utf-8")
    (tmp_path / "keys").chmod(0o600)
    assert settings.keyring().key_ids == Keyring([key]).key_ids
    with pytest.raises(waauth.ConfigurationError, match="WAAUTH_KEYS is not set"):
        Settings.from_env({}).keyring()
    assert not Settings.from_env({"WAAUTH_INSECURE_PLAINTEXT": "1"}).keyring().encrypts
    with pytest.raises(waauth.ConfigurationError, match="WAAUTH_DSN or DATABASE_URL"):
        Settings.from_env({}).require_dsn()
    with pytest.raises(waauth.ConfigurationError, match="schema"):
        Settings.from_env({"WAAUTH_SCHEMA": "Bad-Name"})


@pytest.mark.parametrize(
    ("dsn", "named"),
    [
        ("not a dsn", 'missing "=" after "not"'),
        ("postgresql://u:pw@127.0.0.1:5432/x?sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("host=127.0.0.1 target_session_attrs=bogus", "target_session_attrs"),
        ("host=127.0.0.1 colour=blue", 'invalid connection option "colour"'),
        ("postgresql://u@h:abc/x", "port 'abc'"),
        ("host=db hostaddr=db.internal", "hostaddr 'db.internal' is not an IP address"),
        ("host=db sslmode=prefer sslnegotiation=direct", 'weak sslmode "prefer"'),
        ("service=no_such_service_waauth", 'definition of service "no_such_service_waauth"'),
    ],
)
def test_a_malformed_address_is_a_configuration_error(dsn: str, named: str) -> None:
    """libpq's own words name the problem; no server is contacted."""
    with pytest.raises(waauth.ConfigurationError, match="address is not valid") as info:
        check_conninfo(dsn)
    assert named in str(info.value)


def test_a_good_address_passes() -> None:
    """Valid addresses (URL, conninfo, several hosts) are returned unchanged."""
    for dsn in (
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=require",
        "host=a,b port=5432,5433 dbname=x target_session_attrs=read-write",
        "host=db target_session_attrs=prefer-standby load_balance_hosts=random",
        "host=/tmp/sockets dbname=x channel_binding=require require_auth=scram-sha-256",
        "host=db hostaddr=10.0.0.5 sslmode=verify-full sslrootcert=system",
    ):
        assert check_conninfo(dsn) == dsn


async def test_library_fails_at_once_on_a_malformed_address(tmp_path: Path) -> None:
    """open, Mirror and materialize (both twins) raise ConfigurationError without retrying."""
    keyring = Keyring([Keyring.generate_key()])
    policy = waauth.RetryPolicy(budget=30)
    dsn = "postgresql://u:pw@127.0.0.1:5432/x?sslmode=bogus"
    started = time.monotonic()
    with pytest.raises(waauth.ConfigurationError, match="sslmode"):
        waauth.PostgresAuthState.open(dsn, "s1", keyring=keyring, retry=policy)
    with pytest.raises(waauth.ConfigurationError, match="sslmode"):
        await waauth.AsyncPostgresAuthState.open(dsn, "s1", keyring=keyring, retry=policy)
    with pytest.raises(waauth.ConfigurationError, match="not valid"):
        waauth.materialize("not a dsn", tmp_path, keyring=keyring, retry=policy)
    with pytest.raises(waauth.ConfigurationError, match="not valid"):
        await waauth.amaterialize("not a dsn", tmp_path, keyring=keyring, retry=policy)
    with pytest.raises(waauth.ConfigurationError, match="sslmode"):
        waauth.Mirror(dsn, tmp_path, keyring=keyring, retry=policy)
    with pytest.raises(waauth.ConfigurationError, match="sslmode"):
        waauth.AsyncMirror(dsn, tmp_path, keyring=keyring, retry=policy)
    assert time.monotonic() - started < 5


def test_a_refused_connection_is_retried_and_its_cause_shown(
    keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: retried, and both the retry lines and the error give libpq's reason
    (Connection refused), never the password."""
    dsn = "postgresql://bot:s3cret-pw@127.0.0.1:1/test"  # nothing listens on port 1
    policy = waauth.RetryPolicy(budget=0.6, initial_delay=0.05, max_delay=0.1, connect_timeout=1)
    with (
        caplog.at_level(logging.WARNING, logger="waauth"),
        pytest.raises(waauth.StoreUnavailable) as info,
    ):
        waauth.PostgresAuthState.open(dsn, "s1", keyring=keyring, retry=policy)
    retries = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert len(retries) >= 2
    assert all("Connection refused" in line for line in retries), retries
    assert "Connection refused" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in str(info.value)
