"""The HTTP endpoints the in-process tests call."""

from django.urls import path
from knox import views as knox_views

from channels_bearer.views import TicketView

urlpatterns = [
    path("api/ws-ticket/", TicketView.as_view()),
    path("api/knox/logout/", knox_views.LogoutView.as_view()),
    path("api/knox/logoutall/", knox_views.LogoutAllView.as_view()),
]
