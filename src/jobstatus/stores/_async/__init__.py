"""The hand-written async sources of the stores' twins: written once, for asyncio.

Each module here is the source of its sync twin in :mod:`jobstatus.stores._sync`,
which ``scripts/unasync.py`` generates (CI runs ``scripts/unasync.py --check``):

- ``redis`` and ``postgres``: the network stores' calls. The public store class
  combines both sides with a base class that holds what they share (options,
  clients, errors): ``stores/_redis_base.py``, ``stores/_postgres_base.py``.
- ``subscription``: ``Subscription`` and its polling default, exported by
  :mod:`jobstatus.stores.base`.
"""
