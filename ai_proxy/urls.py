from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("models", views.ModelListApi.as_view(), name="models"),
    path("models/<path:model_id>", views.ModelDetailApi.as_view(), name="model-detail"),
]
