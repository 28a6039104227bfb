from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ai/", include("ai_proxy.urls")),
    path("api/ai/", include("billing.urls")),
]
