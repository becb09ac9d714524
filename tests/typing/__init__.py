"""Code that mypy --strict checks (tox -e types): typed the way a bot developer types it."""
