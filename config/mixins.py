"""What every page view that needs a role shares."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.http import HttpRequest, HttpResponse


class RoleRequiredMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """Signed in, holding `permission_required`, and the method must be one the view has.

    The method is judged before the role, as the API does: a GET to a POST-only action answers 405 for every
    signed-in user, so the answer never depends on who asks for something that does not exist. Signed-out
    visitors still go to the login page first.
    """

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        method = request.method.lower()
        if request.user.is_authenticated and (method not in self.http_method_names or not hasattr(self, method)):
            return self.http_method_not_allowed(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)
