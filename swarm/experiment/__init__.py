"""One experiment: the arena manifest, the agent's workspace (its copy of the arena), the sandboxed run."""
