from django.urls import path

from . import views

urlpatterns = [
    path("usage", views.UsageApi.as_view(), name="usage"),
]
