"""`python -m bench.ingest`: see bench/ingest/run.py and `--help`."""

from __future__ import annotations

from .run import main

raise SystemExit(main())
