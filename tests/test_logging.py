"""Logging that fits the ecosystem: child loggers per concern, a NullHandler, fields as extra."""

from __future__ import annotations

import logging

import pytest

import waauth
from waauth import Keyring, RetryPolicy
from waauth.testing import fake_creds, outage


def test_the_root_logger_is_quiet_until_the_application_configures_logging() -> None:
    """waauth adds a NullHandler to its root logger, and nothing else (a library never
    configures logging)."""
    handlers = logging.getLogger("waauth").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


def test_each_concern_has_its_child_logger() -> None:
    """The modules log under waauth.<concern>, so one concern can be turned up or down."""
    from waauth._async import database, lease, state, writer  # noqa: PLC0415
    from waauth._async import mirror as amirror  # noqa: PLC0415

    names = {m.logger.name for m in (database, lease, state, writer, amirror)}
    assert names == {
        "waauth.database",
        "waauth.lease",
        "waauth.state",
        "waauth.writer",
        "waauth.mirror",
    }


def test_retries_and_outages_carry_their_fields(
    pg_dsn: str, schema: str, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry line carries operation, attempt, delay and error class; the writer's lines carry
    the session id; no field or message holds a secret."""
    caplog.set_level(logging.INFO, logger="waauth")
    policy = RetryPolicy(budget=0.6, initial_delay=0.05, max_delay=0.1)
    creds = fake_creds()
    with waauth.PostgresAuthState.open(
        pg_dsn, "logged", keyring=keyring, schema=schema, retry=policy, window=0.05
    ) as state:
        with outage(state):
            state.creds = creds
            state.save_creds()
            with pytest.raises(waauth.StoreUnavailable):
                state.flush(timeout=2)
        state.flush(timeout=10)
    retries = [r for r in caplog.records if r.name == "waauth.database" and hasattr(r, "attempt")]
    assert retries, [r.getMessage() for r in caplog.records]
    fields = vars(retries[0])
    assert (fields["attempt"], type(fields["delay"]), type(fields["error"])) == (1, float, str)
    assert "logged" in fields["operation"]
    about_session = [r for r in caplog.records if getattr(r, "session_id", None) == "logged"]
    assert {r.name for r in about_session} >= {"waauth.writer"}
    secret = creds["noiseKey"]["private"].hex()
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in repr(vars(record))
