from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from labeler.api import token_views


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and tools ask for /favicon.ico whatever a page links: the static icon."""
    return redirect(static("labeler/favicon.ico"), permanent=True)


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("labeler.projects.urls")),
    path("", include("labeler.items.urls")),
    path("", include("labeler.annotations.urls")),
    path("", include("labeler.insights.urls")),
    path("", include("labeler.training.urls")),
    path("", include("labeler.webhooks.urls")),
    path("api/v1/", include("labeler.api.urls")),
    path("account/tokens/", token_views.tokens_page, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke/", token_views.revoke, name="api_token_revoke"),
]

handler404 = "labeler.api.errors.not_found"
handler500 = "labeler.outages.server_error"
