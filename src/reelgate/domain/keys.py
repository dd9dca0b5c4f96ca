"""How upstream API keys are named without revealing them."""

from __future__ import annotations

import hashlib


def fingerprint(secret: str) -> str:
    """A stable id for a key: what the database and the logs know it by."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def label(secret: str) -> str:
    """How a key is shown to operators: never more than its last four characters."""
    return "..." + secret[-4:] if len(secret) > 8 else "..."
