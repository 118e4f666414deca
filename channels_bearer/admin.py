"""An admin action that cuts users off: "Close this user's WebSockets".

Add it to your user admin, and to the token admins you use (knox's, or any
with a ``user`` foreign key: there it closes the sockets of each selected
token's user)::

    from django.contrib import admin
    from django.contrib.auth.admin import UserAdmin
    from django.contrib.auth.models import User
    from channels_bearer.admin import close_websockets

    admin.site.unregister(User)

    @admin.register(User)
    class BearerUserAdmin(UserAdmin):
        actions = [*UserAdmin.actions, close_websockets]

DRF's token admin lists tokens under their users' ids, which Django's actions
cannot select by (DRF turns actions off there); :class:`TokenAdminMixin` brings
the action back for it::

    from rest_framework.authtoken.admin import TokenAdmin
    from rest_framework.authtoken.models import TokenProxy
    from channels_bearer.admin import TokenAdminMixin

    admin.site.unregister(TokenProxy)
    admin.site.register(TokenProxy, type("BearerTokenAdmin", (TokenAdminMixin, TokenAdmin), {}))

The sockets close with 4403 on every server process, through the channel
layer, as :func:`channels_bearer.revoke.disconnect_user` closes them. How many
there were is known where the sockets are counted across processes
(``MAX_SOCKETS_PER_USER`` with a Redis ``LIMITS_CACHE``); the message says so
otherwise. It needs the change permission on the model. The users stay
active and their tokens valid: they may reconnect.
Deactivate the user or delete the token to keep them out.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect
from django.utils.text import format_lazy

from channels_bearer import limits
from channels_bearer.conf import conf
from channels_bearer.revoke import disconnect_user
from channels_bearer.registry import user_key

__all__ = ["TokenAdminMixin", "close_websockets"]


# permissions=["change"]: cutting a user off is a change to what they may do,
# not something a view-only staff member should be offered.
@admin.action(description="Close this user's WebSockets", permissions=["change"])
def close_websockets(modeladmin: Any, request: Any, queryset: Any) -> None:
    """Close the WebSockets of the selected users (or of the selected tokens' users) on every process."""
    user_keys = sorted(set(_user_keys(queryset)))
    config = conf.current()
    counts = [limits.open_sockets_now(key, config) for key in user_keys]
    for key in user_keys:
        disconnect_user(key, reason="closed by an administrator")
    users = len(user_keys)
    if users and all(count is not None for count in counts):
        closed = sum(count for count in counts if count is not None)
        text = format_lazy(
            "Closed {sockets} WebSocket(s) of {users} user(s), on every server process.",
            sockets=closed,
            users=users,
        )
    else:
        text = format_lazy(
            "Closing the WebSockets of {users} user(s) on every server process (how many is known only with "
            "MAX_SOCKETS_PER_USER set and a Redis LIMITS_CACHE).",
            users=users,
        )
    modeladmin.message_user(request, text, messages.SUCCESS)


def _user_keys(queryset: Any) -> list[str]:
    """The users a queryset of users or of token rows (anything with a ``user`` foreign key) names."""
    if issubclass(queryset.model, get_user_model()):
        return [user_key(pk) for pk in queryset.values_list("pk", flat=True)]
    return [user_key(pk) for pk in queryset.values_list("user_id", flat=True) if pk is not None]


class TokenAdminMixin:
    """For DRF's ``TokenAdmin``: the action, on the users whose ids the changelist's checkboxes hold.

    DRF's ``TokenProxy`` answers its user's id as ``pk`` (the changelist links
    and selects by it), while Django's actions look the selected rows up by
    the token's real primary key, its key: DRF sets ``actions = None``.
    """

    actions = [close_websockets]

    def response_action(self, request: Any, queryset: Any, *args: Any, **kwargs: Any) -> Any:
        # Django 6.1 adds action_location=: whatever Django passes goes on to it.
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        select_across = request.POST.get("select_across") == "1"
        allowed = self.has_change_permission(request)  # type: ignore[attr-defined]
        if request.POST.get("action") != "close_websockets" or select_across or not selected or not allowed:
            # Django's own handling, which offers the action only to those its permission allows.
            return super().response_action(request, queryset, *args, **kwargs)  # type: ignore[misc]
        close_websockets(self, request, get_user_model()._default_manager.filter(pk__in=selected))
        return HttpResponseRedirect(request.get_full_path())
