"""Settings of the example: the database is the one $TASKRUNNER_DSN names (the worker
reads the same variable), the taskrunner schema $TASKRUNNER_SCHEMA."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

DSN = urlsplit(os.environ.get("TASKRUNNER_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["examples.django_app"]
ROOT_URLCONF = "examples.django_app.urls"
MIDDLEWARE = [
    "taskrunner.contrib.django.RequestIdMiddleware",  # first: every view runs under the id
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DSN.path.lstrip("/") or "postgres",
        "USER": unquote(DSN.username or "postgres"),
        "PASSWORD": unquote(DSN.password or ""),
        "HOST": DSN.hostname or "127.0.0.1",
        "PORT": str(DSN.port or 5432),
    }
}

# The schema taskrunner's tables are in (`taskrunner.contrib.django.enqueue` reads it).
TASKRUNNER_SCHEMA = os.environ.get("TASKRUNNER_SCHEMA", "taskrunner_django_example")
