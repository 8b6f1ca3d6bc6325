"""Training time as the trainers count it against ``--minutes``.

A run's budget is the time it trained, summed step by step. A step that took far longer than a
step does (the process was paused with SIGSTOP while a timing benchmark ran, or the machine
slept) counts as MAX_STEP_S only, so a pause does not eat the budget.
"""
from __future__ import annotations

#: A step on the 2-core CPU takes ~0.5-1.5 s; anything past this was not training.
MAX_STEP_S = 30.0


def step_seconds(now: float, last: float) -> float:
    """Training seconds between two step ends ``last`` and ``now`` (``time.time()``)."""
    return min(max(0.0, now - last), MAX_STEP_S)
