from __future__ import annotations

from netra.cli import main

raise SystemExit(main())
