"""The network stores' calls, written once for asyncio.

Each module here is the hand-written source of its sync twin in
:mod:`jobstatus.stores._sync`, which ``scripts/unasync.py`` generates (CI runs
``scripts/unasync.py --check``). The public store class combines both sides
with a base class that holds what they share: options, clients, errors.
"""
