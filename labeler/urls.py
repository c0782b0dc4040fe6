from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("labeler.projects.urls")),
    path("", include("labeler.items.urls")),
    path("", include("labeler.annotations.urls")),
    path("", include("labeler.insights.urls")),
    path("", include("labeler.training.urls")),
]
