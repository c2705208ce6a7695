"""bench.ingest: RecordTransaction(s) and GetProgress against Attain, next to a bare gRPC echo.

Run it with `scripts/bench` (or `.venv/bin/python -m bench.ingest` from the repository root).
It starts every server as a subprocess on 127.0.0.1, measures, prints a table, writes the
"## Ingest (bench/ingest)" section of docs/benchmarks.md, and removes what it created.
"""
