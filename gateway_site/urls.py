from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from ai_proxy.proxy_views import not_found
from gateway_site.metrics_view import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", metrics_view, name="metrics"),
    path("api/ai/", include("ai_proxy.urls")),
    path("api/ai/", include("billing.urls")),
    # Last: anything else under the API answers a JSON 404, not Django's HTML page.
    re_path(r"^api/ai/(?P<path>.*)$", not_found),
]
