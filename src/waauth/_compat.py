"""Sync counterparts of ``_acompat.py``, for the code generated into ``waauth/_sync``."""

from __future__ import annotations
