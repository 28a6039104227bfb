from django.urls import path

from . import views
from .admin_usage_api import AdminUsageApi

urlpatterns = [
    path("usage", views.UsageApi.as_view(), name="usage"),
    path("admin/usage", AdminUsageApi.as_view(), name="admin-usage"),
]
