"""Catalog model types: the seed marks embedding models, the catalog's validation (model, route, the
admin's route inline) refuses routes that could never serve a model of that type, and the admin
shows and filters the type."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from catalog.models import CatalogModel, Provider, Route
from tests.helpers import form_data

SMALL = "text-embedding-3-small"


def test_the_seed_marks_embedding_models_with_their_dimensions(catalog):
    types = dict(CatalogModel.objects.values_list("public_id", "model_type"))
    assert {k for k, v in types.items() if v == "embedding"} == {SMALL, "text-embedding-3-large", "mock-embedding"}
    assert types["gpt-4o"] == types["claude-3-5-sonnet"] == "chat"
    small = CatalogModel.objects.get(public_id=SMALL)
    assert (small.dimensions, small.context_window) == (1536, 8192)
    assert CatalogModel.objects.get(public_id="text-embedding-3-large").dimensions == 3072
    assert CatalogModel.objects.get(public_id="gpt-4o").dimensions is None
    assert [r.provider.name for r in small.routes.all()] == ["openai"]


def test_it_refuses_a_route_of_an_embedding_model_on_an_anthropic_provider(catalog):
    route = Route(model=CatalogModel.objects.get(public_id=SMALL), provider=Provider.objects.get(name="anthropic"),
                  upstream_model="claude-3-haiku-20240307")
    with pytest.raises(ValidationError) as refused:
        route.full_clean()
    assert refused.value.message_dict["provider"] == [
        "`anthropic` providers have no endpoint for embedding models: route them to a provider of kind "
        "`openai`, `mock`."]
    # An OpenAI-compatible provider is fine.
    Route(model=route.model, provider=Provider.objects.get(name="xai"), upstream_model="v1").full_clean()


def test_it_refuses_a_type_change_its_routes_cannot_serve(catalog):
    haiku = CatalogModel.objects.get(public_id="claude-3-haiku")
    haiku.model_type = CatalogModel.ModelType.EMBEDDING
    with pytest.raises(ValidationError) as refused:
        haiku.full_clean()
    assert "anthropic:claude-3-haiku-20240307 cannot serve it" in refused.value.message_dict["model_type"][0]
    gpt = CatalogModel.objects.get(public_id="gpt-4o")
    gpt.model_type = CatalogModel.ModelType.EMBEDDING
    gpt.full_clean()  # an OpenAI route can embed


def test_the_admin_refuses_the_route_inline_and_filters_by_type(console, catalog):
    model = CatalogModel.objects.get(public_id=SMALL)
    url = reverse("admin:catalog_catalogmodel_change", args=[model.pk])
    data = form_data(console.get(url).content.decode(), "catalogmodel_form")
    data.update({"routes-TOTAL_FORMS": ["2"], "routes-1-provider": [str(Provider.objects.get(name="anthropic").pk)],
                 "routes-1-upstream_model": ["claude-3-haiku-20240307"], "routes-1-priority": ["1"],
                 "routes-1-weight": ["100"], "routes-1-enabled": ["on"], "routes-1-model": [str(model.pk)]})

    response = console.post(url, data)

    assert response.status_code == 200  # the form again, with the error
    assert "providers have no endpoint for embedding models" in response.content.decode()
    assert model.routes.count() == 1

    changelist = reverse("admin:catalog_catalogmodel_changelist")
    page = console.get(changelist, {"model_type__exact": "embedding"}).content.decode()
    assert SMALL in page and "mock-embedding" in page and "claude-3-haiku" not in page
    assert "Embedding (/embeddings)" in console.get(changelist).content.decode()  # the type column


def test_the_admin_refuses_a_new_embedding_model_with_an_anthropic_route(console, catalog):
    url = reverse("admin:catalog_catalogmodel_add")
    data = form_data(console.get(url).content.decode(), "catalogmodel_form")
    data.update({"public_id": ["my-embedder"], "display_name": ["Mine"], "provider_label": ["Me"],
                 "model_type": ["embedding"], "input_price_per_mtok": ["0.1"], "output_price_per_mtok": ["0"],
                 "routes-TOTAL_FORMS": ["1"], "routes-0-provider": [str(Provider.objects.get(name="anthropic").pk)],
                 "routes-0-upstream_model": ["x"], "routes-0-priority": ["0"], "routes-0-weight": ["100"],
                 "routes-0-enabled": ["on"]})

    response = console.post(url, data)

    assert response.status_code == 200 and "providers have no endpoint for embedding models" in response.content.decode()
    assert not CatalogModel.objects.filter(public_id="my-embedder").exists()
