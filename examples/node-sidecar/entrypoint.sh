#!/bin/sh
# Restore every session before the bot starts, mirror the folders while it runs, and push what
# is left when the container is stopped. The bot itself needs no change.
#
#   WAAUTH_DSN (or DATABASE_URL), WAAUTH_KEYS: the database and the keys
#   AUTH_ROOT: the folder the bot keeps its sessions in (default .auth_sessions)
#   BOT_CMD:   how to start the bot (default: node server.js)
set -eu

root="${AUTH_ROOT:-.auth_sessions}"
waauth pull --all "$root"

waauth watch "$root" &
watcher=$!
# shellcheck disable=SC2086  # BOT_CMD is a command line
${BOT_CMD:-node server.js} &
bot=$!

stop() {
    kill -TERM "$bot" 2>/dev/null || true
    wait "$bot" || true
}
trap stop TERM INT

status=0
wait "$bot" || status=$?
# The bot has ended (or was stopped): the watcher pushes what is left, then exits.
kill -TERM "$watcher" 2>/dev/null || true
wait "$watcher" || status=$?
exit "$status"
