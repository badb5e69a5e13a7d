"""Processes that must not outlive their parent: Linux's ``PR_SET_PDEATHSIG``.

The monitor's workload dies with the monitor; a training process dies with its launcher (torchrun starts each
worker in a session of its own, so neither a signal to torchrun's group nor torchrun's own death reaches it).
Elsewhere than Linux this is a no-op, and the sidecar still ends an orphaned workload's group.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1

try:  # looked up once, in the parent, not in a forked child
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None

AVAILABLE = _PRCTL is not None


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies, however the parent dies (also usable as a ``preexec_fn``)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def die_with_launcher() -> None:
    """In a process a launcher (torchrun) started: die with it; if it is already gone (this process was
    handed to init before the call), exit at once."""
    die_with_parent()
    if os.getppid() == 1:
        os._exit(137)
