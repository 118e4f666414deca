"""The ASGI application of the test settings (``ASGI_APPLICATION``), wired as the README shows.

``/ws/whoami/`` is the demo's consumer, which reports what it saw; the stack
around it is built here, so the demo's wiring can change without changing
what the tests test.
"""

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

django_asgi_app = get_asgi_application()

from channels_bearer.middleware import BearerAuthMiddlewareStack  # noqa: E402
from channels_bearer.security import AllowedHostsOriginValidator  # noqa: E402
from testproject.consumers import WhoAmIConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            BearerAuthMiddlewareStack(URLRouter([path("ws/whoami/", WhoAmIConsumer.as_asgi())]))
        ),
    }
)
