"""Code as text: unified diffs (make, apply, hash), the 3-way merge, and the checks an edit must pass. No Redis."""
