"""The stores' sync twins, generated from :mod:`jobstatus.stores._async`.

Do not edit these modules: edit their async source and run ``scripts/unasync.py``.
"""
