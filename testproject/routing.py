from django.urls import path

from testproject.consumers import WhoAmIConsumer, WhoAmIMessageConsumer

websocket_urlpatterns = [
    path("ws/whoami/", WhoAmIConsumer.as_asgi()),
    path("ws/whoami-message/", WhoAmIMessageConsumer.as_asgi()),
]
