"""Board commands for humans: post, hypotheses, cancel, results, leader, best, agents, log, status, init."""

from swarm.cli.app import app  # noqa: F401
