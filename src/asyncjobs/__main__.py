"""``python -m asyncjobs``: the command line."""

from __future__ import annotations

from asyncjobs.cli import main

raise SystemExit(main())
