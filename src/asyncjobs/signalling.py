"""``jobs.signal(id, topic, payload)``: a signal stored for a job's ``wait_for_signal``.

``Jobs`` inherits :class:`Signalling`; it uses only the attributes declared here. The signal
is kept until a step consumes it (sent before the job waits is fine); a suspended job is
woken in the same transaction, this process's autoRun at once, other processes' through
PostgreSQL's NOTIFY.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from asyncjobs.checks import check_id, check_topic
from asyncjobs.json_values import checked
from asyncjobs.storage import Store
from asyncjobs.wake import WakeBus


class Signalling:
    """``signal()`` of the facade."""

    store: Store
    wake: WakeBus
    clock: Callable[[], datetime]

    async def _ready(self) -> None: ...

    async def signal(self, job_id: int, topic: str, payload: dict[str, Any] | None = None) -> bool:
        """Send ``payload`` (a JSON dict; ``{}`` when ``None``) to job ``job_id`` on ``topic``.

        Returns ``False`` when the job does not exist or is finished (nothing is stored).

        Raises:
            ValueError, TypeError: a bad id, topic or payload (nothing is stored).
        """
        job_id, topic = check_id(job_id), check_topic(topic)
        if payload is not None and not isinstance(payload, dict):
            raise TypeError(f"signal payload must be a dict or None, got {type(payload).__name__}")
        value = None if payload is None else checked(payload, "signal payload")
        await self._ready()
        now = self.clock()
        found = await self.store.signal(job_id, topic, value, now=now)
        if found is None:
            return False
        queue, due = found
        if due is None or due <= now:
            self.wake.publish(queue, None)  # runnable now: a lane may run it at once
        return True
