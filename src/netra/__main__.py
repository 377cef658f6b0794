"""``python -m netra`` and the ``netra`` command."""

from __future__ import annotations

from netra import process


def main() -> int:
    process.starting()
    from netra.cli import main as run

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
