import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import AsyncClient
from guardian.shortcuts import assign_perm
from rq import Queue, SimpleWorker

from audit.models import AuditEvent
from scripts_app.models import Environment, Script, Secret

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def fast_password_hashing(request, settings):
    """Hashing demo passwords at full strength costs seconds per test. Browser tests sign in
    through a separate server process, so they keep the real hasher."""
    if request.node.get_closest_marker("browser") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def clean_redis():
    """Tests use their own Redis database (REDIS_URL), emptied before each test."""
    conn = redis.Redis.from_url(settings.REDIS_URL)
    conn.flushdb()
    yield conn


@pytest.fixture
def staging(db):
    return Environment.objects.create(name="Staging", slug="staging", queue_name="test-staging")


@pytest.fixture
def production(db):
    return Environment.objects.create(name="Production", slug="production", queue_name="test-production")


@pytest.fixture
def make_user(db, django_user_model):
    def make(username, *, groups=(), **extra):
        user = django_user_model.objects.create_user(username=username, password=PASSWORD,
                                                     email=f"{username}@example.com", **extra)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make


@pytest.fixture
def make_script(db, staging):
    def make(source, *, slug="demo", language="python", environments=None, timeout=60, author=None):
        script = Script.objects.create(name=slug.title(), slug=slug, language=language, timeout_seconds=timeout)
        script.allowed_environments.set(environments or [staging])
        script.save_source(source, author=author)
        return script

    return make


def grant_runner(user, script, *environments):
    assign_perm("scripts_app.view_script", user, script)
    assign_perm("scripts_app.run_script", user, script)
    for env in environments:
        assign_perm("scripts_app.use_environment", user, env)


@pytest.fixture
def engineer(make_user, staging, production):
    """May see, run and edit every script (global permissions) on staging and production."""
    user = make_user("engineer", groups=["engineering"])
    team = user.groups.get()
    for codename in ("view_script", "run_script", "change_script", "add_script"):
        team.permissions.add(Permission.objects.get(codename=codename))
    for env in (staging, production):
        assign_perm("scripts_app.use_environment", team, env)
    return user


@pytest.fixture
def secret(staging):
    s = Secret(environment=staging, name="API_TOKEN")
    s.set_value("sup3r-s3cret-value-42")
    s.save()
    return s


class NewEvents:
    """The events written since it was made, oldest first."""

    def __init__(self):
        self.last_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def all(self):
        return list(AuditEvent.objects.filter(id__gt=self.last_id).order_by("id"))

    def actions(self):
        return [event.action for event in self.all()]

    def one(self, action):
        """The only new event; fails when there are others or none."""
        events = self.all()
        assert [e.action for e in events] == [action]
        return events[0]


def download_log(user, run):
    """The run's log as `user` downloads it: (response, body). The download streams asynchronously."""

    async def download():
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get(f"/runs/{run.pk}/log.txt")
        return response, b"".join([piece async for piece in response.streaming_content])

    return asyncio.run(download())


def work_queue(queue_name):
    """Run a real RQ worker in burst mode (in this process) until the queue is empty."""
    worker = SimpleWorker([Queue(queue_name, connection=redis.Redis.from_url(settings.REDIS_URL))],
                          connection=redis.Redis.from_url(settings.REDIS_URL))
    worker.work(burst=True, with_scheduler=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def subprocess_env():
    """The environment for a server or worker process that must use this test run's database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url}


def children_of(pid):
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class LiveStack:
    """A real daphne and a real RQ worker (forking, as in production) against the test database."""

    def __init__(self, queues, **extra_env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**subprocess_env(), "BACKFILL_BASE_URL": self.url, **extra_env}
        # Each in a session of its own, so that stopping it also stops what it started (the work horse).
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                              "backfill_site.asgi:application"], cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "manage.py", "backfill_worker", *queues], cwd=ROOT, env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        wait_for_port(self.port)

    def stop(self):
        horses = [pid for proc in self.procs for pid in children_of(proc.pid)]  # rq gives each its own session
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # a worker waits for its job to end: the group is killed below
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture
def live_stack(transactional_db, staging, production):
    stack = LiveStack([staging.queue_name, production.queue_name])
    yield stack
    stack.stop()


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Drive Debian's Chromium (Playwright's own browser download does not work here)."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_FLAGS}


class MailServer:
    """A real SMTP server on a loopback port that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted"

    def wait_for(self, recipient, subject_part, timeout=20):
        """The first message to `recipient` whose subject contains `subject_part`, as an email.message."""
        import email
        from email import policy

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for envelope in list(self.messages):
                message = email.message_from_bytes(envelope.content, policy=policy.default)
                if recipient in envelope.rcpt_tos and subject_part in message["Subject"]:
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no message to {recipient} about {subject_part!r}")


@pytest.fixture
def mail_server():
    server = MailServer()
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
def demo_stack(transactional_db, mail_server, settings, tmp_path):
    """The demo data of `manage.py seed_demo`, served by a real daphne and worked by a real worker;
    the mail it sends goes to `mail_server`."""
    from django.core.management import call_command

    settings.BACKFILL_DEMO_DIR = str(tmp_path)  # the demo campaigns database of this test
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    stack = LiveStack(["staging", "production"], EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                      EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(mail_server.controller.port))
    stack.mail = mail_server
    yield stack
    stack.stop()
