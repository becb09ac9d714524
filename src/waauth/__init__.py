"""waauth: Baileys WhatsApp auth state in PostgreSQL, encrypted, surviving every redeploy."""

from __future__ import annotations

from . import codec, layout
from ._async.migrations import aenable_row_level_security, amigrate
from ._async.state import AsyncKeys, AsyncPostgresAuthState, alist_sessions
from ._sync.migrations import enable_row_level_security, migrate
from ._sync.state import Keys, PostgresAuthState, list_sessions
from .encryption import Keyring
from .errors import (
    AccessDenied,
    ConfigurationError,
    CorruptRecord,
    DecryptionError,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    RecordError,
    SchemaError,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    WaauthError,
)
from .retry import RetryPolicy
from .schema import SCHEMA_VERSION
from .sessions import SessionInfo

__version__ = "0.1.0.dev0"

__all__ = [
    "SCHEMA_VERSION",
    "AccessDenied",
    "AsyncKeys",
    "AsyncPostgresAuthState",
    "ConfigurationError",
    "CorruptRecord",
    "DecryptionError",
    "InvalidInput",
    "Keyring",
    "Keys",
    "LeaseHeld",
    "LeaseLost",
    "PostgresAuthState",
    "RecordError",
    "RetryPolicy",
    "SchemaError",
    "SessionInfo",
    "SessionNotFound",
    "StoreError",
    "StoreUnavailable",
    "WaauthError",
    "__version__",
    "aenable_row_level_security",
    "alist_sessions",
    "amigrate",
    "codec",
    "enable_row_level_security",
    "layout",
    "list_sessions",
    "migrate",
]
