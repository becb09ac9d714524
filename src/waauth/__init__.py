"""waauth: Baileys WhatsApp auth state in PostgreSQL, encrypted, surviving every redeploy."""

from __future__ import annotations

import logging

from . import codec, config, layout
from ._acompat import AsyncOpener
from ._async.fleet import AsyncFleet
from ._async.lease import AsyncLease
from ._async.migrations import aenable_row_level_security, amigrate
from ._async.mirror import AsyncMirror
from ._async.state import AsyncKeys, AsyncPostgresAuthState, alist_sessions, amaterialize
from ._async.verifying import averify_sessions
from ._mirroring import MirrorStats
from ._pending import Stats
from ._sync.fleet import Fleet
from ._sync.lease import Lease
from ._sync.migrations import enable_row_level_security, migrate
from ._sync.mirror import Mirror
from ._sync.state import Keys, PostgresAuthState, list_sessions, materialize
from ._sync.verifying import verify_sessions
from .config import Settings
from .encryption import Keyring
from .errors import (
    AccessDenied,
    ConfigurationError,
    CorruptRecord,
    DecryptionError,
    IdentityConflict,
    IncompleteRestore,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    RecordError,
    SchemaError,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    WaauthError,
    WatcherFailed,
)
from .protocols import AsyncAuthState, AsyncSignalKeyStore, AuthState, SignalKeyStore
from .retry import RetryPolicy
from .schema import SCHEMA_VERSION
from .sessions import ImportResult, MaterializeReport, SessionInfo
from .types import (
    AppStateSyncKeyData,
    AuthenticationCreds,
    KeyPair,
    KeyType,
    LTHashState,
    SessionRecord,
    SignalDataTypeMap,
    SignedKeyPair,
    TcToken,
)
from .verify import Finding, SessionVerdict, VerifyReport

# A library logs and never configures logging: without a handler of the application's, the
# `waauth` logger (and its children: waauth.writer, waauth.lease, waauth.mirror, ...) is quiet.
logging.getLogger("waauth").addHandler(logging.NullHandler())

__version__ = "0.1.0.dev0"

__all__ = [
    "SCHEMA_VERSION",
    "AccessDenied",
    "AppStateSyncKeyData",
    "AsyncAuthState",
    "AsyncFleet",
    "AsyncKeys",
    "AsyncLease",
    "AsyncMirror",
    "AsyncOpener",
    "AsyncPostgresAuthState",
    "AsyncSignalKeyStore",
    "AuthState",
    "AuthenticationCreds",
    "ConfigurationError",
    "CorruptRecord",
    "DecryptionError",
    "Finding",
    "Fleet",
    "IdentityConflict",
    "ImportResult",
    "IncompleteRestore",
    "InvalidInput",
    "KeyPair",
    "KeyType",
    "Keyring",
    "Keys",
    "LTHashState",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "MaterializeReport",
    "Mirror",
    "MirrorStats",
    "PostgresAuthState",
    "RecordError",
    "RetryPolicy",
    "SchemaError",
    "SessionInfo",
    "SessionNotFound",
    "SessionRecord",
    "SessionVerdict",
    "Settings",
    "SignalDataTypeMap",
    "SignalKeyStore",
    "SignedKeyPair",
    "Stats",
    "StoreError",
    "StoreUnavailable",
    "TcToken",
    "VerifyReport",
    "WaauthError",
    "WatcherFailed",
    "__version__",
    "aenable_row_level_security",
    "alist_sessions",
    "amaterialize",
    "amigrate",
    "averify_sessions",
    "codec",
    "config",
    "enable_row_level_security",
    "layout",
    "list_sessions",
    "materialize",
    "migrate",
    "verify_sessions",
]
