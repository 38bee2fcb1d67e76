"""Contract tests: the real SDK clients against the emulators.

The ``emulators`` fixture comes from the ``emulators.testing`` plugin, registered by
tests/conftest.py.
"""
