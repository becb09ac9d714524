"""Code that mypy --strict checks (tox -e types): typed the way a bot developer types it.

(Not named ``typing``: scripts run from tests/, such as tests/lease_child.py, have this folder's
parent on sys.path, where a ``typing`` package would hide the standard library's.)
"""
