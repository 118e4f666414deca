from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from channels_bearer.metrics import metrics_view
from channels_bearer.views import TicketView

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("admin/", admin.site.urls),
    path("api/token/", obtain_auth_token, name="api-token"),
    path("api/jwt/", TokenObtainPairView.as_view(), name="api-jwt"),
    path("api/jwt/refresh/", TokenRefreshView.as_view(), name="api-jwt-refresh"),
    path("api/ws-ticket/", TicketView.as_view(), name="api-ws-ticket"),
    # Prometheus' text format (every process' with PROMETHEUS_MULTIPROC_DIR set);
    # protect it in production as you protect other internal endpoints.
    path("metrics", metrics_view, name="metrics"),
]
