"""Step lists (workflows written as data) checked when the workflow is defined.

The runtime half, which runs the steps pass after pass, is ``declarative``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from asyncjobs import injection
from asyncjobs.checks import HANDLER_ARGS, check_topic
from asyncjobs.retry import as_retries

KINDS = ("task", "inline_task", "sleep", "wait_for_signal")  # what a step does: one of these
STEP_KEYS = frozenset({*KINDS, "id", "input", "condition", "completes_job", "retries", "timeout"})
JOB_ARGS = frozenset({"job"})


def check_steps(steps: Sequence[Mapping[str, Any]], what: str) -> tuple[Mapping[str, Any], ...]:
    """Validate a step list when the workflow is defined.

    Raises:
        ValueError: an empty list, a duplicate or missing id, unknown keys, not exactly one of
            ``task``/``inline_task``/``sleep``/``wait_for_signal``, a bad duration or topic.
        TypeError: a callable that declares arguments it cannot receive.
    """
    if not steps:
        raise ValueError(f"{what} has an empty step list")
    seen: set[str] = set()
    checked = []
    for index, step in enumerate(steps):
        checked.append(_check_step(step, f"{what} step {index}", seen))
    return tuple(checked)


def _check_step(step: Mapping[str, Any], where: str, seen: set[str]) -> Mapping[str, Any]:
    if not isinstance(step, Mapping):
        raise TypeError(f"{where} must be a dict, got {step!r}")
    unknown = sorted(set(step) - STEP_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}")
    step_id = step.get("id")
    if not isinstance(step_id, str) or not step_id or step_id in seen:
        raise ValueError(f"{where} needs a unique non-empty string 'id', got {step_id!r}")
    seen.add(step_id)
    kinds = [kind for kind in KINDS if kind in step]
    if len(kinds) != 1:
        raise ValueError(f"{where} ({step_id!r}) needs exactly one of {', '.join(KINDS)}")
    _check_kind(step, kinds[0], f"{where} ({step_id!r})")
    _check_callables(step, f"{where} ({step_id!r})")
    as_retries(step.get("retries"), f"{where} retries")
    return MappingProxyType(dict(step))


def _check_kind(step: Mapping[str, Any], kind: str, where: str) -> None:
    value = step[kind]
    if kind == "inline_task":
        injection.check_injectable(value, HANDLER_ARGS, f"{where} inline_task")
    elif kind == "task" and not isinstance(value, str):
        raise TypeError(f"{where} 'task' must be a task slug")
    elif kind == "sleep":
        _check_seconds(value, f"{where} 'sleep'")
    elif kind == "wait_for_signal":
        check_topic(value)
    if "timeout" in step:
        if kind != "wait_for_signal":
            raise ValueError(f"{where} 'timeout' goes only with 'wait_for_signal'")
        _check_seconds(step["timeout"], f"{where} 'timeout'")


def _check_seconds(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{what} must be a number of seconds (0 or more), got {value!r:.40}")


def _check_callables(step: Mapping[str, Any], where: str) -> None:
    if "condition" in step:
        injection.check_injectable(step["condition"], JOB_ARGS, f"{where} condition")
    value = step.get("input")
    if callable(value):
        injection.check_injectable(value, JOB_ARGS, f"{where} input")
    elif value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{where} 'input' must be a dict or a callable(job), got {value!r}")
    if not isinstance(step.get("completes_job", False), bool):
        raise TypeError(f"{where} 'completes_job' must be a bool, got {step['completes_job']!r}")
