"""The ``Jobs`` object a Django project names in ``settings.ASYNCJOBS``."""

from __future__ import annotations

import importlib
from typing import Any

from asyncjobs.jobs import Jobs

SETTING = "ASYNCJOBS"


def get_jobs() -> Jobs:
    """The ``Jobs`` object named by ``settings.ASYNCJOBS["JOBS"]``.

    Raises:
        ValueError: the setting is missing or does not name a ``Jobs`` object.
    """
    return load_jobs(None)


def load_jobs(target: Any, what: str | None = None) -> Jobs:
    """``target`` (a ``Jobs`` or a ``"module:attr"`` naming one); ``None``: the setting's.

    Raises:
        ValueError: naming ``what`` (the setting ``target`` came from) and the value.
    """
    if target is None:
        target, what = _settings().get("JOBS"), f'settings.{SETTING}["JOBS"]'
    given = target
    if isinstance(target, str) and ":" in target:
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr, None)
    if not isinstance(target, Jobs):
        raise ValueError(
            f'{what} must be a Jobs object or a "module:attr" naming one, got {given!r}'
        )
    return target


def _settings() -> dict[str, Any]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return dict(getattr(settings, SETTING, None) or {})
    except ImproperlyConfigured:  # no Django settings at all: everything was passed in
        return {}
