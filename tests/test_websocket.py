"""The run log WebSocket: backlog after a sequence number, then live chunks, no gap, no duplicate."""

import asyncio
import json
import time

import pytest
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from runs import services
from runs.models import LogChunk, RunStatus
from runs.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_with_chunks(engineer, make_script, staging):
    run = services.request_run(engineer, make_script("print(1)\n"), staging, {})
    run.transition(RunStatus.RUNNING)
    for seq in (1, 2, 3):
        LogChunk.objects.create(run=run, seq=seq, text=f"line {seq}\n")
    return run


def communicator(run_id, user, after=0):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run_id}/?after={after}")
    comm.scope["user"] = user
    return comm


async def receive_chunks(comm, count):
    messages = [await comm.receive_json_from(timeout=5) for _ in range(count)]
    return [(m["seq"], m["text"]) for m in messages if m["type"] == "chunk"]


def test_backlog_then_live_chunks_without_duplicates_or_gaps(run_with_chunks, engineer):
    run = run_with_chunks

    async def scenario():
        comm = communicator(run.pk, engineer, after=1)
        connected, _ = await comm.connect()
        assert connected
        assert await receive_chunks(comm, 2) == [(2, "line 2\n"), (3, "line 3\n")]
        status = await comm.receive_json_from(timeout=5)
        assert status["type"] == "status" and status["status"] == "running"
        layer = get_channel_layer()
        group = services.group_name(run.pk)
        await layer.group_send(group, {"type": "run.chunk", "seq": 3, "text": "line 3\n"})  # already sent
        await layer.group_send(group, {"type": "run.chunk", "seq": 4, "text": "line 4\n"})
        assert await receive_chunks(comm, 1) == [(4, "line 4\n")]
        # seq 5 was stored but its live message was lost: the consumer fills the gap from the database
        await asyncio.to_thread(LogChunk.objects.create, run=run, seq=5, text="line 5\n")
        await layer.group_send(group, {"type": "run.chunk", "seq": 6, "text": "line 6\n"})
        assert await receive_chunks(comm, 2) == [(5, "line 5\n"), (6, "line 6\n")]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    asyncio.run(scenario())


def test_reconnect_resumes_after_the_last_sequence(run_with_chunks, engineer):
    async def scenario():
        comm = communicator(run_with_chunks.pk, engineer, after=3)
        assert (await comm.connect())[0]
        message = await comm.receive_json_from(timeout=5)
        assert message["type"] == "status"  # nothing after 3 yet: no chunk is sent twice
        await comm.disconnect()

    asyncio.run(scenario())


def test_socket_refuses_who_may_not_view_the_run(run_with_chunks, make_user):
    from django.contrib.auth.models import AnonymousUser

    stranger = make_user("stranger")

    async def scenario(user):
        comm = communicator(run_with_chunks.pk, user)
        connected, code = await comm.connect()
        assert not connected
        assert code == 4403

    asyncio.run(scenario(stranger))
    asyncio.run(scenario(AnonymousUser()))


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_live_log_through_daphne_from_a_real_worker(live_stack, engineer, make_script, staging):
    script = make_script(
        "import time\nfor i in range(1, 6):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.4)\n"
    )
    ws_url = live_stack.url.replace("http", "ws")
    run = services.request_run(engineer, script, staging, {})
    arrivals, status = [], None
    with connect(f"{ws_url}/ws/runs/{run.pk}/?after=0", origin=live_stack.url,
                 additional_headers={"Cookie": session_cookie(engineer)}, open_timeout=10) as ws:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=30))
            if message["type"] == "chunk":
                arrivals.append((time.monotonic(), message["seq"], message["text"]))
            elif message["finished"]:
                status = message
                break
    assert status["status"] == "succeeded" and status["exit_code"] == 0
    assert [seq for _, seq, _ in arrivals] == list(range(1, len(arrivals) + 1))
    assert "".join(text for _, _, text in arrivals) == "".join(f"tick {i}\n" for i in range(1, 6))
    assert len(arrivals) >= 3
    assert arrivals[-1][0] - arrivals[0][0] > 1.0  # lines arrived while the script ran, not all at the end

    # a reconnecting page asks for what follows the last chunk it has, and gets exactly that
    with connect(f"{ws_url}/ws/runs/{run.pk}/?after=2", origin=live_stack.url,
                 additional_headers={"Cookie": session_cookie(engineer)}) as ws:
        seqs = []
        while (message := json.loads(ws.recv(timeout=10)))["type"] == "chunk":
            seqs.append(message["seq"])
        assert seqs == list(range(3, len(arrivals) + 1))


def test_daphne_refuses_anonymous_and_strangers(live_stack, engineer, make_user, make_script, staging):
    run = services.request_run(engineer, make_script("print(1)\n"), staging, {})
    ws_url = live_stack.url.replace("http", "ws") + f"/ws/runs/{run.pk}/"
    for headers in ({}, {"Cookie": session_cookie(make_user("stranger"))}):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, origin=live_stack.url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):  # a page from another site may not open it either
        connect(ws_url, origin="http://evil.example", additional_headers={"Cookie": session_cookie(engineer)})
