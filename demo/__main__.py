"""``python -m demo``: provision, rotate and verify three tenants on local emulators."""

from demo.run import main

if __name__ == "__main__":
    raise SystemExit(main())
