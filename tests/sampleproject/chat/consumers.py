from channels.generic.websocket import AsyncJsonWebsocketConsumer

from channels_bearer.consumers import BearerConsumerMixin


class ChatConsumer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    """A chat room for signed-in users: says hello, then relays messages to the room."""

    app_subprotocols = ["chat.v1"]

    async def connect(self):
        self.group = "chat-" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": self.scope["user"].get_username()})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send(
            self.group,
            {"type": "chat.message", "user": self.scope["user"].get_username(), "text": content["text"]},
        )

    async def chat_message(self, event):
        await self.send_json({"type": "message", "user": event["user"], "text": event["text"]})
