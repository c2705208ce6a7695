"""Prometheus metrics of one process, served over HTTP when ATTAIN_METRICS_LISTEN is set.

prometheus-client keeps the counters in this process; each server or worker process is
scraped on its own address. Labels are kept to the brand so that a broken brand can be found
without a series per member or cycle.
"""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

CYCLE_HOLDS = Counter(
    "attain_cycle_holds",
    "Times the cycle clock held a target or cycle it could not open or close (a failure "
    "recorded; the reason is in ListCycles and the log).",
    ["brand"],
)
CYCLE_RELEASES = Counter(
    "attain_cycle_releases",
    "Held targets or cycles the clock got through on a later try.",
    ["brand"],
)


def serve_metrics(listen: str) -> int:
    """Starts the /metrics endpoint on ``listen`` (host:port, port 0 picks one) in a thread
    of its own; returns the port."""
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    return int(server.server_port)
