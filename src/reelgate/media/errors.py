"""The one exception a user's bad input file turns into."""

from __future__ import annotations

from reelgate.domain.errors import InvalidInput


class MediaError(InvalidInput):
    """A user-supplied file (image or video) is missing, corrupt or unsupported.

    The message is shown to the client as the task's failure reason, so it
    names the problem in plain words and never leaks a library traceback.
    Not retried: the same bytes will fail the same way.
    """
