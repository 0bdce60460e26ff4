"""WebSocket /ws/runs/<id>/?after=<seq>: the stored chunks after `after`, then live ones."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import QueryDict

from runs import services

BACKLOG_BATCH = 500


class RunLogConsumer(AsyncJsonWebsocketConsumer):
    """Sends each chunk once, in order: the backlog from the database, then the group's live chunks.

    Live chunks already sent from the backlog are dropped; a gap (a live message lost under load)
    is filled from the database, so the browser never misses or repeats a chunk.
    """

    async def connect(self):
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        run = await database_sync_to_async(services.visible_run_or_none)(self.scope["user"], self.run_id)
        if run is None:
            await self.close(code=4403)
            return
        self.group = services.group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        query = QueryDict(self.scope.get("query_string", b"").decode())
        try:
            self.last_seq = max(0, int(query.get("after", "0")))
        except ValueError:
            self.last_seq = 0
        await self.send_backlog()
        fresh = await database_sync_to_async(services.visible_run_or_none)(self.scope["user"], self.run_id)
        await self.send_json({**services.status_message(fresh), "type": "status"})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_backlog(self):
        while rows := await database_sync_to_async(services.chunks_after)(self.run_id, self.last_seq, BACKLOG_BATCH):
            for row in rows:
                await self.send_json({"type": "chunk", "seq": row["seq"], "text": row["text"]})
            self.last_seq = rows[-1]["seq"]

    async def run_chunk(self, event):
        if event["seq"] <= self.last_seq:
            return
        if event["seq"] > self.last_seq + 1:
            await self.send_backlog()
            if event["seq"] <= self.last_seq:
                return
        await self.send_json({"type": "chunk", "seq": event["seq"], "text": event["text"]})
        self.last_seq = event["seq"]

    async def run_status(self, event):
        await self.send_backlog()  # chunks whose live message was lost arrive before the end
        await self.send_json({**event, "type": "status"})

    async def run_progress(self, event):
        await self.send_json({**event, "type": "progress"})

    async def run_batches(self, event):
        await self.send_json({**event, "type": "batches"})

    async def run_controls(self, event):
        await self.send_json({**event, "type": "controls"})

    async def receive_json(self, content, **kwargs):
        """The socket is read-only; controls go through the page's forms and the API."""
