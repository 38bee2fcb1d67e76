"""The operator CLI: ``python -m rotator --help``. Same settings and use cases as the functions."""
