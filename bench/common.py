"""Shared set-up for the benchmarks in this folder (not a benchmark itself).

`configure()` points the process (and the subprocesses it starts) at a dedicated PostgreSQL
database and Redis database, with production-like settings (DEBUG off), and calls django.setup().
`reset_state()` drops and recreates the database, migrates it and flushes the Redis database.
The database is left in place at the end so that a run can be inspected; the next run drops it.
"""

import base64
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "backfill_bench"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
QUEUE = "bench"

SETTINGS_ENV = {
    "DJANGO_SETTINGS_MODULE": "backfill_site.settings",
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
    "SECRETS_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"bench-only-fernet-key-32-bytes!!").decode(),
    "ALLOWED_HOSTS": "localhost,127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_COOKIES": "0",
    "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
    "REDIS_URL": REDIS_URL,
}


def configure():
    """Settings for this process and its children; then django.setup()."""
    os.environ.update(SETTINGS_ENV)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()


def reset_state():
    """Drop and create the benchmark database, migrate it, and empty the benchmark Redis database."""
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    call_command("migrate", verbosity=0, interactive=False)
    redis.Redis.from_url(REDIS_URL).flushdb()


def create_fixtures(slug, source, timeout_seconds=3600):
    """A superuser, an environment on QUEUE and a Python script with `source`; returns all three."""
    from django.contrib.auth import get_user_model

    from scripts_app.models import Environment, Script

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password-not-used")
    environment = Environment.objects.create(name="Bench", slug="bench", queue_name=QUEUE)
    script = Script.objects.create(name=slug.title(), slug=slug, language=Script.Language.PYTHON,
                                   timeout_seconds=timeout_seconds)
    script.allowed_environments.set([environment])
    script.save_source(source, author=user)
    return user, environment, script


def start(args, log_path):
    """Start a project process (cwd = the project root, this process's environment), output to a file."""
    log = open(log_path, "wb")  # closed by stop()
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def stop(proc, timeout=15):
    """Terminate one process that this benchmark started (SIGTERM, then SIGKILL), and close its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def machine():
    """The facts that make the numbers comparable: CPU, kernel, Python, PostgreSQL, date."""
    from django.db import connection

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        postgres = cursor.fetchone()[0].split(" on ")[0]
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]  # read-only: never touch the index
    revision = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"],
                           capture_output=True, text=True)  # changes to the project's code, not to bench/
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "uname -a": subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": postgres,
        "code": f"{revision or 'unknown'}{' + uncommitted changes' if dirty.stdout.strip() else ''} ({ROOT})",
        # Other work on the machine skews the numbers: the benchmarks want it idle.
        "load avg": " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min, at the start)",
    }


def print_machine():
    for key, value in machine().items():
        print(f"{key:>10}: {value}")
