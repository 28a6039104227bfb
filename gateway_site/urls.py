from django.contrib import admin
from django.urls import include, path, re_path

from ai_proxy.proxy_views import not_found
from gateway_site.metrics_view import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/ai/", include("ai_proxy.urls")),
    path("api/ai/", include("billing.urls")),
    # Last: anything else under the API answers a JSON 404, not Django's HTML page.
    re_path(r"^api/ai/(?P<path>.*)$", not_found),
]
