"""The HTTP endpoints the in-process tests call."""

from django.urls import path

from channels_bearer.views import TicketView

urlpatterns = [
    path("api/ws-ticket/", TicketView.as_view()),
]
