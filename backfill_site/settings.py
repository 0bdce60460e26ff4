"""Settings, read from the environment (12-factor).

Everything a deployment changes comes from an environment variable; the defaults are for a
developer's machine (SQLite under var/, Redis on localhost) and only apply with DEBUG on where
they would be unsafe in production.
"""

import base64
import hashlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-" + "x" * 40

# Fernet key that encrypts environment secrets at rest. Dev default: derived from SECRET_KEY.
SECRETS_ENCRYPTION_KEY = os.environ.get("SECRETS_ENCRYPTION_KEY", "")
if not SECRETS_ENCRYPTION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEY must be set when DEBUG is off.")
    SECRETS_ENCRYPTION_KEY = base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "guardian",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "audit",
    "scripts_app",
    "ui_builder",
    "runs",
    "approvals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "backfill_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "backfill_site.wsgi.application"
ASGI_APPLICATION = "backfill_site.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'backfill.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web process write at once; wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "tools"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
# Accounts are made by an admin; nobody signs themselves up.
ACCOUNT_ADAPTER = "backfill_site.accounts.NoSignupAdapter"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"
# daphne serves /static/ itself (dev, tests, small installs); behind a proxy, collectstatic instead.
SERVE_STATIC = env_bool("SERVE_STATIC", DEBUG)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

# Jobs go through rq directly, one queue per environment (Environment.queue_name), enqueued on commit.

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "scripts_app.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Backfill API",
    "DESCRIPTION": "Run scripts, follow their logs, cancel them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

_email_backend = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {
    "default": {
        "BACKEND": _email_backend,
        "OPTIONS": {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": int(os.environ.get("EMAIL_PORT", "25")),
            "username": os.environ.get("EMAIL_HOST_USER", ""),
            "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", False),
            "timeout": int(os.environ.get("EMAIL_TIMEOUT", "10")),
        }
        if _email_backend.endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "backfill@localhost")
# Where people reach this service: the links in emails start with it.
BACKFILL_BASE_URL = os.environ.get("BACKFILL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# An approval link stops working after this long even if its request has not expired.
APPROVAL_LINK_MAX_AGE_SECONDS = int(os.environ.get("APPROVAL_LINK_MAX_AGE_SECONDS", str(14 * 24 * 3600)))

# Runs
BACKFILL_MAX_OUTPUT_BYTES = int(os.environ.get("BACKFILL_MAX_OUTPUT_BYTES", str(256 * 1024 * 1024)))
BACKFILL_KILL_GRACE_SECONDS = float(os.environ.get("BACKFILL_KILL_GRACE_SECONDS", "5"))
BACKFILL_HEARTBEAT_SECONDS = float(os.environ.get("BACKFILL_HEARTBEAT_SECONDS", "5"))
# A notification that could not be sent is tried again after this, doubling each time (5 attempts).
BACKFILL_NOTIFY_RETRY_SECONDS = float(os.environ.get("BACKFILL_NOTIFY_RETRY_SECONDS", "30"))
# Folders of scripts the admin can sync with a button (manage.py sync_scripts syncs any folder).
BACKFILL_SYNC_FOLDERS = [f for f in os.environ.get("BACKFILL_SYNC_FOLDERS", "").split(os.pathsep) if f]
# The demo backfill's target database (seed_demo): SQLite files here, or PostgreSQL at the URL.
BACKFILL_DEMO_DIR = os.environ.get("BACKFILL_DEMO_DIR", str(BASE_DIR / "var"))
BACKFILL_DEMO_TARGET_URL = os.environ.get("BACKFILL_DEMO_TARGET_URL", "")
# A running run without a heartbeat for this long is marked lost by the reaper (`manage.py reap_runs`).
BACKFILL_LOST_AFTER_SECONDS = float(os.environ.get("BACKFILL_LOST_AFTER_SECONDS", "60"))
BACKFILL_LOG_FLUSH_SECONDS = 0.1
# The largest file a form's upload field takes (a field's own max, in KB, can only lower it).
BACKFILL_MAX_UPLOAD_BYTES = int(os.environ.get("BACKFILL_MAX_UPLOAD_BYTES", str(10 * 1024 * 1024)))
BACKFILL_LOG_FLUSH_BYTES = 64 * 1024
# How much of the log the run page renders at once; the rest is in the download.
BACKFILL_PAGE_TAIL_BYTES = 256 * 1024
BACKFILL_TEMP_DIR = os.environ.get("BACKFILL_TEMP_DIR") or None

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
