"""waauth's ``pytest11`` entry point: registers the plugin only when the project asks for it.

pytest loads every installed ``pytest11`` entry point in every run, so this module only adds
the ``waauth_plugin`` setting and, when it is true, registers :mod:`waauth.testing.plugin`.
The plugin is registered under its module name, so ``pytest_plugins`` or ``-p`` naming it too
is harmless.
"""

from __future__ import annotations

from typing import Final

import pytest

PLUGIN: Final = "waauth.testing.plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``waauth_plugin`` setting (false by default)."""
    parser.addini(
        "waauth_plugin",
        type="bool",
        default=False,
        help="enable waauth's fixtures (waauth_state, async_waauth_state, waauth_postgres)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin if ``waauth_plugin`` is true and nothing registered it yet."""
    if config.getini("waauth_plugin") and not config.pluginmanager.has_plugin(PLUGIN):
        from . import plugin  # noqa: PLC0415 - imported only when enabled

        config.pluginmanager.register(plugin, PLUGIN)
