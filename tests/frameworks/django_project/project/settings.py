"""Settings of the test project: the database from ``$SHOP_DATABASE_URL`` (``sqlite:///path``
or ``postgresql://user@host:port/db``), the conveyor store from ``$CONVEYOR_URL``."""

import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = "test-project-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "project.urls"
LOGIN_URL = "/admin/login/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_tasks",
    "conveyor.contrib.django",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path)}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": _database(os.environ["SHOP_DATABASE_URL"])}

# The project's conveyor app: the store from $CONVEYOR_URL, options here.
CONVEYOR = {"namespace": os.environ.get("SHOP_NAMESPACE", "shop"), "lease": 30}

TASKS = {
    "default": {
        "BACKEND": "conveyor.contrib.django.ConveyorBackend",
        "QUEUES": ["default", "mail"],
    },
    # A backend with a store of its own: `manage.py conveyor_worker --tasks-backend other`.
    "other": {
        "BACKEND": "conveyor.contrib.django.ConveyorBackend",
        "OPTIONS": {"url": os.environ.get("SHOP_OTHER_URL", "sqlite:///other-jobs.db"), "retries": 1},
    },
}
