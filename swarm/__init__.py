"""swarm: autoresearch agents, one per GPU on any number of machines, sharing one Redis board.

The package is a library first (board, runner, agent, proposers, metrics) and a thin typer CLI on
top (`swarm.cli`). The experiment itself lives in `arena/`, which never imports this package.
"""

__version__ = "0.1.0"
