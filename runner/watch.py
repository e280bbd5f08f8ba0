"""Status watching decisions.

Foundation strategy: each job describes itself, with a delay that grows while
nothing changes (so a quiet week-long job costs little) and drops back to the
minimum on every change. Batched List* watching and pushed events plug in here.
"""

from __future__ import annotations


def next_poll_delay(quiet_for: float, poll_min: float, poll_max: float) -> float:
    """Seconds until the next describe, given how long the status has not changed."""
    if quiet_for <= 0:
        return poll_min
    return max(poll_min, min(poll_max, quiet_for / 4.0))
