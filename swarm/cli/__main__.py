"""`python -m swarm.cli` runs the CLI (what `swarm launch` uses to start agents)."""

from swarm.cli import main

main()
