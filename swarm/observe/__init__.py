"""Watching a swarm: per-agent metrics, the board exporter, per-proposer accounting, the live view, the report."""
