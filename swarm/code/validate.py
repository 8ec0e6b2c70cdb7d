"""Whether an edit may run at all: editable files only, Python that compiles, under a size cap.

Checked before any run is spent: an edit that fails here is published as `invalid` with the reason.
"""

from __future__ import annotations

EDITABLE_MAX_BYTES = 512 * 1024  # a train.py is ~30 KB; 16x headroom, yet a runaway edit is refused


def validate_edit(files: dict[str, str], editable: list[str]) -> str | None:
    """Why an edit may not run (None when it may): editable files only, compiles, under size caps."""
    extra = sorted(set(files) - set(editable))
    if extra:
        return f"edit touches files outside the editable set: {', '.join(extra)}"
    for rel, text in files.items():
        size = len(text.encode("utf-8"))
        if size > EDITABLE_MAX_BYTES:
            return f"{rel} is {size} bytes, over the {EDITABLE_MAX_BYTES}-byte cap"
        if rel.endswith(".py"):
            try:
                compile(text, rel, "exec")
            except SyntaxError as exc:
                return f"{rel} does not compile: line {exc.lineno}: {exc.msg}"
    return None
