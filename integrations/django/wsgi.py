"""WSGI (``manage.py runserver``, gunicorn): Django only, jobs are NOT run in this process.

A WSGI server has no lifespan, so nothing here starts the jobs: run a worker beside it,
``python integrations/django/manage.py asyncjobs run --cron "* * * * *"`` (asyncjobs logs a
warning saying so the first time a job is queued), or serve ``asgi.py`` instead.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations.django.settings")

application = get_wsgi_application()
