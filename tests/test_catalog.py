"""The catalog's rules that protect billing: no enabled model without a price, no route, no call."""

from __future__ import annotations

import openai
import pytest
from django.core.exceptions import ValidationError

from catalog.models import CatalogModel


@pytest.mark.django_db
def test_an_enabled_model_needs_prices(catalog):
    model = CatalogModel.objects.get(public_id="gpt-4o")
    model.output_price_per_mtok = None
    with pytest.raises(ValidationError) as exc:
        model.full_clean()
    assert "output_price_per_mtok" in exc.value.message_dict
    model.enabled = False
    model.full_clean()  # a disabled model may wait for its prices


@pytest.mark.django_db
def test_the_admin_refuses_to_save_an_enabled_unpriced_model(catalog, admin_client):
    model = CatalogModel.objects.get(public_id="mock-echo")
    response = admin_client.get(f"/admin/catalog/catalogmodel/{model.pk}/change/")
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, (list, tuple))}
    for formset in response.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = management.initial.get(name, field.initial) or 0
        for i, inline_form in enumerate(formset.formset.forms):
            for name, value in inline_form.initial.items():
                if value is not None:
                    data[f"{inline_form.prefix}-{name}"] = value
    data["input_price_per_mtok"] = ""
    data["enabled"] = "on"
    response = admin_client.post(f"/admin/catalog/catalogmodel/{model.pk}/change/", data)
    assert response.status_code == 200, "the form comes back with an error instead of saving"
    assert "Required while the model is enabled" in response.content.decode()
    model.refresh_from_db()
    assert model.input_price_per_mtok is not None


@pytest.mark.django_db(transaction=True)
def test_a_model_saved_without_prices_is_refused_at_request_time(gateway):
    model = CatalogModel.objects.get(public_id="mock-echo")
    model.input_price_per_mtok = None
    model.save()  # bypassing clean(), as a data migration might
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.openai().chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503 and exc.value.code == "model_not_priced"


@pytest.mark.django_db(transaction=True)
def test_a_model_without_enabled_routes_answers_503(gateway):
    from catalog.models import Route

    for route in Route.objects.filter(model__public_id="gpt-4o"):
        route.enabled = False
        route.save()
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503 and exc.value.code == "no_route_available"
    assert "gpt-4o" in exc.value.message
