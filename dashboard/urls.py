from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("orgs/<slug:slug>/", views.organization, name="organization"),
    path("orgs/<slug:slug>/keys/<str:prefix>/", views.api_key, name="key"),
    path("ledger/", views.ledger, name="ledger"),
    path("export.csv", views.export_csv, name="export"),
]
