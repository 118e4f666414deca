"""ASGI entry point: ``daphne testproject.asgi:application`` (from the repository root)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Build Django first: consumers and the middleware import models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from channels_bearer.middleware import BearerAuthMiddlewareStack  # noqa: E402
from channels_bearer.security import AllowedHostsOriginValidator  # noqa: E402
from testproject.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Static files are served by the app itself, under daphne and uvicorn
        # alike, with no collectstatic step: this is a demo.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(BearerAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
