"""Failure counting in a moving window, for throttling guessed passwords and API keys.

A thin face over the `limits` library (its moving-window strategy on in-process memory storage): callers count
failures per name or address with `fail`, ask `blocked` before checking a secret, and tell people how long to
wait with `retry_after`. The counts live in the process that checks (the model server, the Streamlit app); state
that must outlive the process or be cleared by an admin (an account lock) lives in the database instead.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class FailureLimiter:
    """At most `rate` failures per key (e.g. "10/minute"); the next attempt in the window is refused.

    Args:
        rate: a `limits` rate string: "<count>/<second|minute|hour>" (e.g. "10/minute", "20 per minute").
        scope: a prefix keeping different limiters' keys apart in logs and storage.
    """

    def __init__(self, rate: str, *, scope: str) -> None:
        self.rate = rate
        self.scope = scope
        self._item: RateLimitItem = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def limit(self) -> int:
        """How many failures the window holds before attempts are refused."""
        return int(self._item.amount)

    def fail(self, key: str) -> None:
        """Count one failure for `key`."""
        self._limiter.hit(self._item, self.scope, key)

    def blocked(self, key: str) -> bool:
        """Whether `key` has used up its failures in the current window."""
        return not self._limiter.test(self._item, self.scope, key)

    def failures(self, key: str) -> int:
        """Failures of `key` counted in the current window."""
        stats = self._limiter.get_window_stats(self._item, self.scope, key)
        return self.limit - int(stats.remaining)

    def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may try again (at least 1)."""
        stats = self._limiter.get_window_stats(self._item, self.scope, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def clear(self, key: str) -> None:
        """Forget the failures of `key` (after a success, or when a stronger lock takes over)."""
        self._limiter.clear(self._item, self.scope, key)
