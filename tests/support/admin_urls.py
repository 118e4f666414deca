"""An admin site with channels-bearer's action, for the in-process admin test.

Its own ``AdminSite``, so that registering here changes nothing in Django's
default site (which other tests and the demo use).
"""

from django.contrib.admin import AdminSite
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.urls import path

from channels_bearer.admin import close_websockets

site = AdminSite(name="bearer_test_admin")


class UserAdminWithTheAction(UserAdmin):
    actions = [close_websockets]


site.register(User, UserAdminWithTheAction)

urlpatterns = [path("admin/", site.urls)]
