from django.contrib import admin
from django.urls import include, path, re_path

from ai_proxy.proxy_views import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ai/", include("ai_proxy.urls")),
    path("api/ai/", include("billing.urls")),
    # Last: anything else under the API answers a JSON 404, not Django's HTML page.
    re_path(r"^api/ai/(?P<path>.*)$", not_found),
]
