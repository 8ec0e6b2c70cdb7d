"""Proposers: where hypotheses and their edits come from (classical optimizer, LLM providers)."""
