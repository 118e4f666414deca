"""The demo's admin: "Close this user's WebSockets" on users and on DRF tokens."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from channels_bearer.admin import TokenAdminMixin, close_websockets

admin.site.unregister(User)
admin.site.unregister(TokenProxy)


@admin.register(User)
class BearerUserAdmin(UserAdmin):
    actions = [*(UserAdmin.actions or ()), close_websockets]


@admin.register(TokenProxy)
class BearerTokenAdmin(TokenAdminMixin, TokenAdmin):
    pass
