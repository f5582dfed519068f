"""The worker processes of a fault-injection run: start, SIGKILL, replace, stop, read their logs."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from faults_worker import WorkerConfig

import asyncjobs

WORKER_SCRIPT = Path(__file__).with_name("faults_worker.py")
SOURCE = str(Path(asyncjobs.__file__).resolve().parents[1])  # the asyncjobs the workers import
READY_WITHIN = 120.0  # seconds a worker may take to import, connect and start
STOP_WITHIN = 15.0
ERROR_LINE = re.compile(r"^\S+ \S+ ERROR (.*)$")
JOB_ID = re.compile(r"\bjob \d+")  # one line per kind of error, not per job


@dataclass
class Worker:
    name: str
    proc: asyncio.subprocess.Process
    ready_at: float | None = None


class Workers:
    """Worker processes named ``w1``, ``w2``, ... (a replacement gets the next name)."""

    def __init__(self, config: WorkerConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.alive: list[Worker] = []
        self.gone: list[Worker] = []
        self.started = 0

    async def spawn(self) -> Worker:
        self.started += 1
        name = f"w{self.started}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")]),
        }
        with (self.folder / f"{name}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, str(WORKER_SCRIPT), name, self.config.to_json()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
            )
        worker = Worker(name, proc)
        self.alive.append(worker)
        return worker

    async def ready(self, worker: Worker) -> None:
        """Wait for the worker's ``ready`` line."""
        assert worker.proc.stdout is not None
        line = await asyncio.wait_for(worker.proc.stdout.readline(), READY_WITHIN)
        if line.strip() != b"ready":
            log = (self.folder / f"{worker.name}.log").read_text(errors="replace")
            raise RuntimeError(f"worker {worker.name} did not start:\n{log[-3000:]}")
        worker.ready_at = time.time()

    async def start(self, count: int) -> float:
        """Start ``count`` workers; returns when the first of them was ready."""
        workers = [await self.spawn() for _ in range(count)]
        await asyncio.gather(*(self.ready(w) for w in workers))
        return min(w.ready_at for w in workers if w.ready_at is not None)

    def kill(self, rng: random.Random) -> tuple[str, float] | None:
        """SIGKILL a random started worker; returns its name and when it was killed."""
        started = [w for w in self.alive if w.ready_at is not None]
        if not started:
            return None  # every worker is a replacement still starting
        victim = rng.choice(started)
        victim.proc.kill()
        at = time.time()
        self.alive.remove(victim)
        self.gone.append(victim)
        return victim.name, at

    async def stop(self) -> None:
        """Close every worker's stdin (it stops its Jobs), then kill what is left."""
        alive, self.alive = self.alive, []
        for worker in alive:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in alive + self.gone:
            try:
                await asyncio.wait_for(worker.proc.wait(), STOP_WITHIN)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
        self.gone.extend(alive)

    def errors(self) -> Counter[str]:
        """The errors the workers logged, one line each (an exception's name and message)."""
        counts: Counter[str] = Counter()
        for log in sorted(self.folder.glob("w*.log")):
            for line in log.read_text(errors="replace").splitlines():
                match = ERROR_LINE.match(line)
                if match:
                    counts[JOB_ID.sub("job N", match.group(1))] += 1
        return counts
