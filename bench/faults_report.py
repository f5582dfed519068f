"""What a fault-injection run prints: the settings, the figures as a table, the verdict."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

from faults_figures import Figures, JobRow, Recovery, recovery_summary
from faults_workers import Workers


def say(line: str = "") -> None:
    print(line, flush=True)


def intro(args: argparse.Namespace, steps: tuple[str, ...], failing_step: str) -> None:
    say("asyncjobs fault-injection run")
    say(
        f"  {args.backend}, {args.jobs:,} workflow jobs of {len(steps)} steps"
        f" ({args.step_ms:g} ms each), {args.workers} worker processes"
        f" ({args.engine}, limit {args.limit}), lease {args.lease:g} s"
    )
    faults = []
    if args.mode in ("kill", "both"):
        low, high = args.kill_every
        most = "" if args.kills is None else f", at most {args.kills}"
        faults.append(f"SIGKILL a random worker every {low:g}-{high:g} s{most}")
    if args.mode in ("restart", "both"):
        times = "time" if args.restarts == 1 else "times"
        faults.append(f"restart PostgreSQL {args.restarts} {times}")
    say(f"  faults: {'; '.join(faults)}; seed {args.seed} (--seed {args.seed} repeats it)")
    if args.fail_every:
        say(
            f"  every {args.fail_every}th job fails step {failing_step} once"
            f" (workflow retries {args.retries})"
        )


def _table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        say(f"  {name.ljust(width)}  {value}")


def _by_worker(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    return f"{len(counts)} workers ran steps, {min(counts.values())}-{max(counts.values())} each"


def _recovery_line(r: Recovery, t0: float) -> str:
    event, at = r.event, r.event.at
    if event.kind == "kill":
        what = f"kill {event.worker}"
    else:
        what = f"restart (server down {event.back - event.down:.2f} s)"
    if not r.in_flight:
        caught = "no job caught"
    elif r.recovered_after is None:
        caught = f"{r.in_flight} jobs caught, none completed"
    else:
        done = "all" if not r.never else f"{r.in_flight - r.never}"
        caught = f"{r.in_flight} jobs caught, {done} completed after {r.recovered_after:.1f} s"
        caught += f", {r.never} never" if r.never else ""
    resumed = "none" if r.resumed_after is None else f"after {r.resumed_after:.1f} s"
    return f"{at - t0:6.1f} s  {what}: {caught}; first completion {resumed}"


def summary(
    found: Figures, rows: list[JobRow], t0: float, began: float, workers: Workers
) -> dict[str, Any]:
    done = [r.completed_at for r in rows if r.completed_at is not None]
    drain = (max(done) - t0) if done else 0.0
    rate = len(done) / drain if drain > 0 else 0.0
    lease = workers.config.lease
    kills = sum(r.event.kind == "kill" for r in found.recoveries)
    restarts = len(found.recoveries) - kills
    say()
    _table(
        [
            ("lost", str(found.lost)),
            ("stuck", str(found.stuck)),
            ("failed for good", str(found.failed)),
            ("finished steps re-run", str(found.finished_steps_rerun)),
            ("interrupted steps re-run", f"{found.interrupted_steps_rerun} (expected)"),
            ("tries counted by crashes", str(found.tries_counted)),
            ("completed without a full ledger trail", str(found.untraced)),
            ("kills / restarts", f"{kills} / {restarts}"),
            ("work shared", _by_worker(found.steps_by_worker)),
            *(
                (f"recovery after a {kind}", recovery_summary(found.recoveries, kind, lease))
                for kind, count in (("kill", kills), ("restart", restarts))
                if count
            ),
            ("drain", f"{drain:.1f} s, {rate:,.0f} jobs/s ({len(done):,} completed)"),
            ("total", f"{time.time() - began:.1f} s"),
        ]
    )
    _details(found, workers, t0)
    problems = found.problems()
    verdict = ", ".join(f"{name} {value}" for name, value in problems.items())
    say(f"\nRESULT: {'FAIL (' + verdict + ')' if problems else 'OK'}")
    return {
        **asdict(found),
        "problems": problems,
        "kills": kills,
        "restarts": restarts,
        "drain_seconds": drain,
        "jobs_per_second": rate,
        "worker_errors": dict(workers.errors()),
    }


def _details(found: Figures, workers: Workers, t0: float) -> None:
    if found.recoveries:
        lease = workers.config.lease
        say(
            f"\nfaults (time into the drain; recovery from the kill, or from the server"
            f" accepting connections again; lease {lease:g} s):"
        )
        for n, recovery in enumerate(found.recoveries, 1):
            say(f"  {n:>2}. {_recovery_line(recovery, t0)}")
    for title, counts in (
        ("jobs failed for good", found.errors),
        ("errors the workers logged", dict(workers.errors())),
    ):
        if counts:
            say(f"\n{title}:")
            for text, count in sorted(counts.items(), key=lambda item: -item[1])[:8]:
                say(f"  {count:>5} x {text[:160]}")
