"""``python -m demo`` (``make demo``): the whole job on local emulators. See demo/run.py."""
