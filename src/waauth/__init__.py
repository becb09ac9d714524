"""waauth: Baileys WhatsApp auth state in PostgreSQL, encrypted, surviving every redeploy."""

from __future__ import annotations

from . import codec, layout
from .encryption import Keyring
from .errors import (
    ConfigurationError,
    CorruptRecord,
    DecryptionError,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    RecordError,
    SchemaError,
    SessionNotFound,
    StoreUnavailable,
    WaauthError,
)
from .schema import SCHEMA_VERSION, amigrate, migrate

__version__ = "0.1.0.dev0"

__all__ = [
    "SCHEMA_VERSION",
    "ConfigurationError",
    "CorruptRecord",
    "DecryptionError",
    "InvalidInput",
    "Keyring",
    "LeaseHeld",
    "LeaseLost",
    "RecordError",
    "SchemaError",
    "SessionNotFound",
    "StoreUnavailable",
    "WaauthError",
    "__version__",
    "amigrate",
    "codec",
    "layout",
    "migrate",
]
