"""``staff_user``: an ``Access`` check that approves the staff members signed in to the site.

Django's session cookie identifies the user, as in Django's admin::

    from asyncjobs.integrations.django import staff_user

    jobs = asyncjobs.Jobs(..., access=asyncjobs.Access(dashboard=staff_user, run=staff_user,
                                                       cancel=staff_user))
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import aget_user
from django.http import HttpRequest
from django.http.cookie import parse_cookie


async def staff_user(request: Any) -> bool:
    """Whether the request's Django session belongs to an active staff member."""
    key = parse_cookie(request.headers.get("cookie", "")).get(settings.SESSION_COOKIE_NAME)
    if not key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    django_request = HttpRequest()
    django_request.session = session
    user = await aget_user(django_request)
    return bool(user.is_active and user.is_staff)
