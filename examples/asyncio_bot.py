"""An asyncio bot (aiogram, python-telegram-bot, FastAPI...) using AsyncPostgresAuthState.

    python examples/asyncio_bot.py

Each handler opens the user's WhatsApp session from PostgreSQL; a redeploy loses nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys

from _support import database, demo_creds
from psycopg_pool import AsyncConnectionPool

from waauth import AsyncPostgresAuthState, Keyring, alist_sessions

KEYRING = Keyring.from_env() if os.environ.get("WAAUTH_KEYS") else Keyring([Keyring.generate_key()])


async def on_connect_command(pool: AsyncConnectionPool, chat_id: int) -> str:
    """What a /connect handler does: open (or start) the user's session and save its creds."""
    async with AsyncPostgresAuthState.open(
        pool, f"tg_{chat_id}", keyring=KEYRING, owner_id=str(chat_id)
    ) as state:
        if state.creds is None:
            state.creds = demo_creds()
            await state.save_creds()
            return "new session: scan the QR code"
        await state.keys.set(
            {"sender-key-memory": {"120363@g.us": {f"{chat_id}:1@s.whatsapp.net": True}}}
        )
        return "session restored, no QR code needed"


async def main() -> int:
    with database() as dsn:
        # One pool for the whole bot, shared by every handler; waauth never closes it.
        async with AsyncConnectionPool(dsn, open=False) as pool:
            replies = await asyncio.gather(
                *(on_connect_command(pool, chat) for chat in (1460561546, 987654321))
            )
            print("first start:", replies)
            replies = await asyncio.gather(
                *(on_connect_command(pool, chat) for chat in (1460561546, 987654321))
            )
            print("after a redeploy:", replies)
            sessions = await alist_sessions(pool)
            print(
                "sessions:",
                ", ".join(f"{s.session_id} (owner {s.owner_id}, {s.status})" for s in sessions),
            )
            # Log the demo sessions out: nothing is left for the next run or another example.
            for chat in (1460561546, 987654321):
                async with AsyncPostgresAuthState.open(
                    pool, f"tg_{chat}", keyring=KEYRING, owner_id=str(chat)
                ) as state:
                    await state.delete()
            return 0 if all("restored" in r for r in replies) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
