"""Processes on this host: whether one is still alive, so the files a dead
process left (its scratch directory, its metrics files) can be removed."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not
    signal counts as alive: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
