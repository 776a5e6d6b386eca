"""Run budgets: stop a run once it has spent its tokens or its time.

``AGENTIC_RUN_MAX_TOKENS`` and ``AGENTIC_RUN_MAX_SECONDS`` (unset: no limit) are read when a
run starts. A spent budget stops the run through the same path as ``RunOptions.cancel``:
:meth:`RunBudget.trip` cancels the run's ``CancelToken``, whose callbacks terminate the
running steps through their launcher handles (distributed backends), or the in-process crew
raises ``BudgetExceeded`` at its next check. Finished steps are kept; the run ends with the
status ``budget_exceeded`` (exit code 5), and ``--resume`` continues it with a fresh budget:
a budget counts what *this* invocation spends, since the finished steps are not run again.

When the budget is checked:

- tokens: a distributed coordinator adds each finished step's ``usage`` (a worker reports
  it in ``result.json``); in-process, after every LLM call (CrewAI's step callback) and
  between steps. A step that is running when the last token is spent is stopped.
  An iterative run's replanning rounds count too (``IterativePlan.budget``: each round
  adds the tokens its calls reported), so a round that spends the budget stops the run
  before the next step starts. The first plan is not counted: it is made before the run
  starts (``--plan-only`` costs the same), bounded by its own ``max_tokens``.
- time: a timer fires when the time is up, so a running step is terminated at once on a
  distributed backend; in-process it is noticed after the current LLM call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from agentic_orchestration import settings

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.launcher import CancelToken

logger = logging.getLogger(__name__)

__all__ = ["RunBudget"]


class RunBudget:
    """The token and time budget of one run (either may be None: no limit).

    Args:
        max_tokens: Tokens (prompt plus completion, every step) the run may spend.
        max_seconds: Wall time of the run, from ``start``.
    """

    def __init__(self, *, max_tokens: int | None = None,
                 max_seconds: float | None = None) -> None:
        self.max_tokens = max_tokens
        self.max_seconds = max_seconds
        self.tokens = 0
        #: Why the budget stopped the run ("" while it has not).
        self.exceeded = ""
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._token: CancelToken | None = None

    @classmethod
    def from_settings(cls) -> RunBudget:
        """``AGENTIC_RUN_MAX_TOKENS`` / ``AGENTIC_RUN_MAX_SECONDS`` as they are now."""
        tokens = settings.value("AGENTIC_RUN_MAX_TOKENS")
        seconds = settings.value("AGENTIC_RUN_MAX_SECONDS")
        return cls(max_tokens=int(tokens) if tokens else None,
                   max_seconds=float(seconds) if seconds else None)

    @property
    def limited(self) -> bool:
        return self.max_tokens is not None or self.max_seconds is not None

    def start(self, token: CancelToken | None = None) -> RunBudget:
        """Start the clock; ``token`` is cancelled when the budget is spent."""
        self._started = time.monotonic()
        self._token = token
        if self.max_seconds is not None:
            self._timer = threading.Timer(self.max_seconds, self.check)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Stop the timer (the run is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def add_tokens(self, count: int) -> str:
        """Count ``count`` more tokens spent; returns ``exceeded`` (trips if now spent)."""
        with self._lock:
            self.tokens += max(int(count or 0), 0)
        return self.check()

    def check(self, *, running_tokens: int = 0) -> str:
        """Why the budget is spent ("" while it is not), counting ``running_tokens`` that a
        running step has used so far on top of the finished steps'. Trips when spent."""
        if self.exceeded:
            return self.exceeded
        reason = ""
        spent = self.tokens + max(running_tokens, 0)
        if self.max_tokens is not None and spent >= self.max_tokens:
            reason = f"token budget spent: {spent} of {self.max_tokens} tokens"
        elif self.max_seconds is not None and self.elapsed >= self.max_seconds:
            reason = f"time budget spent: {self.elapsed:.1f}s of {self.max_seconds:g}s"
        if reason:
            self.trip(reason)
        return self.exceeded

    def trip(self, reason: str) -> None:
        """Mark the budget spent and cancel the run's token (first reason wins)."""
        with self._lock:
            if self.exceeded:
                return
            self.exceeded = reason
        logger.warning("run budget: %s; stopping the run", reason)
        if self._token is not None:
            self._token.cancel(f"budget exceeded: {reason}")
