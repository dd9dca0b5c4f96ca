"""Text and numbers that every part of the system can store and send back.

JSON lets a client send what no database or encoder can keep: a lone UTF-16
surrogate (`"\\ud800"`), which cannot be written as UTF-8; a NUL character,
which PostgreSQL text refuses; and `NaN` or `Infinity`, which are not JSON at
all on the way out. The API refuses them at the edge (`unstorable`); the
store repairs what an older version let through (`repaired`), so a stored
row can never make a read fail.
"""

from __future__ import annotations

import math
from typing import Any

REPLACEMENT = "\ufffd"
MAX_DEPTH = 32
"""Deepest nesting of lists and objects a request may have: no request needs
more, and a deeper value is one that serialisers (and recursion) fail on."""


def _text_problem(text: str) -> str | None:
    if text.isascii():
        return "contains a NUL character" if "\x00" in text else None
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate, which is not valid Unicode text"
    return None


def unstorable(value: Any, where: str = "", depth: int = 0) -> str | None:
    """The first value that cannot be stored or sent back, as "where: why"
    (a dotted path into the value), or None when everything is fine."""
    if depth > MAX_DEPTH:
        return f"{where or 'body'}: nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        problem = _text_problem(value)
        return f"{where or 'value'}: {problem}" if problem else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where or 'value'}: must be a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and _text_problem(key):
                return f"{where or 'body'}: a field name {_text_problem(key)}"
            found = unstorable(item, path, depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = unstorable(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
    return None


def repaired_text(text: str) -> str:
    """`text` with NULs dropped and unpaired surrogates replaced (U+FFFD);
    a valid surrogate pair becomes the character it encodes."""
    if _text_problem(text) is None:
        return text
    fixed = text.replace("\x00", "")
    return fixed.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def repaired(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like value that `unstorable` finds nothing wrong with
    (non-finite numbers become null, and anything nested deeper than
    `MAX_DEPTH` is cut off there)."""
    if isinstance(value, str):
        return repaired_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {
            repaired_text(k) if isinstance(k, str) else k: repaired(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [repaired(v, depth + 1) for v in value]
    return value
