"""The agent: one process per GPU that claims, implements, runs, publishes, confirms and rebases (docs/agent.md)."""
