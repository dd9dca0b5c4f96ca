"""Callback links handed to upstream services.

An upstream (the official API, or another reelgate) calls back whatever URL
it was given, unsigned or signed with a secret we do not know. So the link
itself carries the proof: an HMAC of the task id under the deployment's
secret. A callback only nudges the worker that follows the task; the state
it acts on always comes from an authenticated GET to the upstream, so a
forged or replayed callback can at most cause one extra poll.
"""

from __future__ import annotations

import hashlib
import hmac

CALLBACK_ROUTE = "/upstream/callbacks"


class UpstreamCallbackLinks:
    def __init__(self, secret: str, public_base_url: str | None) -> None:
        self._key = hmac.new(secret.encode(), b"upstream-callbacks", hashlib.sha256).digest()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def token(self, task_id: str) -> str:
        return hmac.new(self._key, task_id.encode(), hashlib.sha256).hexdigest()[:32]

    def url(self, task_id: str) -> str | None:
        """The link for a task, or None when this deployment has no public URL
        (then upstream generations are followed by polling)."""
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}{CALLBACK_ROUTE}/{task_id}/{self.token(task_id)}"

    def valid(self, task_id: str, token: str) -> bool:
        # bytes: compare_digest refuses non-ASCII str, and links are untrusted input
        return hmac.compare_digest(self.token(task_id).encode(), token.encode("utf-8", "replace"))
