"""The dashboards: thin views that resolve who may see what (access), parse the URL (params),
and ask panels for numbers. Staff see every organization; members their own only."""

from __future__ import annotations

import csv
import io
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseForbidden, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from billing.models import Budget, UsageRecord
from billing.usage_hourly import UsageScope, regroup, usage_aggregate

from . import panels
from .access import Viewer, key_for, member_time_zone, organization_for, viewer_get
from .params import ParamError, View, view_parse

LEDGER_PAGE = 100
CSV_CHUNK = 1000


def dashboard_view(func):
    """Logged in with dashboard access, and a parsed View (a bad URL is a 400 page, not a 500)."""

    @wraps(func)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        viewer = viewer_get(request.user)
        if viewer is None:
            return HttpResponseForbidden(
                "This account has no dashboard access. Ask an operator to add you to your organization."
            )
        try:
            view = view_parse(request.GET, default_tz=member_time_zone(request.user))
        except ParamError as exc:
            return render(request, "dashboard/error.html", {"message": str(exc), "viewer": viewer}, status=400)
        return func(request, viewer, view, *args, **kwargs)

    return wrapper


def _scope(view: View, **filters) -> UsageScope:
    start, end = view.window()
    return UsageScope(start=start, end=end, tz=view.tz, model_name=view.model or None,
                      provider=view.provider or None, **filters)


def _charts_context(view: View, scope: UsageScope, rows: list[dict], dim: str, names: dict, base: str) -> dict:
    labels = panels.bucket_labels(scope.start, scope.end, view.bucket, view.tz)
    label_texts = [panels.label_text(b) for b in labels]
    return {
        "labels": label_texts,
        "bucket": view.bucket,
        "spend": panels.stacked(rows, labels, dim, names),
        "traffic": panels.traffic(rows, labels),
        # Clicking a bar opens the ledger rows behind it: this view's filters plus the bucket.
        "ledger_url": reverse("dashboard:ledger") + "?" + base,
    }


def _page(request, template: str, viewer: Viewer, view: View, **context):
    start, end = view.window()
    context.update(viewer=viewer, view=view, window_start=start, window_end=end, now=timezone.now(),
                   presets=["24h", "7d", "30d", "90d"], tz_label=view.tz or "UTC")
    context.setdefault("charts", {})
    return render(request, template, context)


@dashboard_view
def overview(request, viewer: Viewer, view: View):
    if not viewer.staff:
        return redirect(reverse("dashboard:organization", args=[viewer.organization.slug]) + _qs(view))
    filters = {}
    if view.org:
        org = organization_for(viewer, view.org)
        filters["organization_id"] = org.pk
        if view.key:
            filters["api_key_id"] = key_for(org, view.key).pk
    scope = _scope(view, **filters)
    dim = "organization_id" if view.stack == "org" else "model_name"
    # Three grouped reads: the chart's buckets and per organization and model (summary, latency,
    # top organizations) from the organization-level day table, and per key for the top keys
    # (requests, errors and cost only: an index-only scan on PostgreSQL).
    rows = usage_aggregate(scope, (dim,), bucket=view.bucket, tokens=False)
    by_org_model = usage_aggregate(scope, ("organization_id", "model_name"), histograms=True)
    by_model = regroup(by_org_model, ("model_name",))
    by_key = usage_aggregate(scope, ("organization_id", "api_key_id"), tokens=False)
    org_names, key_names = panels.names_for(by_key)
    charts = _charts_context(view, scope, rows, dim, org_names, view.query(at=""))
    top_orgs = panels.ranked(regroup(by_org_model, ("organization_id",)), "organization_id")
    top_keys = panels.ranked(by_key, "api_key_id")
    gauges = panels.budget_spend(list(
        Budget.objects.select_related("organization", "api_key").filter(
            organization_id__in=[r["organization_id"] for r in top_orgs]
        )
    ))
    org_budget = {g["budget"].organization_id: g for g in gauges if g["budget"].api_key_id is None}
    key_budget = {g["budget"].api_key_id: g for g in gauges if g["budget"].api_key_id is not None}
    return _page(
        request, "dashboard/overview.html", viewer, view,
        summary=panels.summary(by_model), charts=charts,
        latency=panels.latency_by_model(by_model),
        top_orgs=[{**r, "slug": org_names.get(r["organization_id"], "(deleted)"),
                   "gauge": org_budget.get(r["organization_id"])} for r in top_orgs],
        top_keys=[{**r, "prefix": key_names.get(r["api_key_id"], "(deleted)"),
                   "slug": org_names.get(r["organization_id"], "(deleted)"),
                   "gauge": key_budget.get(r["api_key_id"])} for r in top_keys],
        cooling=panels.cooling_routes(), alerts=panels.recent_alerts(),
        organizations=_org_choices(viewer),
    )


def _org_choices(viewer: Viewer) -> list[str]:
    from orgs.models import Organization

    return list(Organization.objects.order_by("slug").values_list("slug", flat=True)) if viewer.staff else []


def _qs(view: View) -> str:
    query = view.query(org="", key="")
    return "?" + query if query else ""


@dashboard_view
def organization(request, viewer: Viewer, view: View, slug: str):
    org = organization_for(viewer, slug)
    return _scoped_page(request, viewer, replace_view(view, org=org.slug), org, None)


@dashboard_view
def api_key(request, viewer: Viewer, view: View, slug: str, prefix: str):
    org = organization_for(viewer, slug)
    key = key_for(org, prefix)
    return _scoped_page(request, viewer, replace_view(view, org=org.slug, key=key.prefix), org, key)


def replace_view(view: View, **changes) -> View:
    from dataclasses import replace

    return replace(view, **changes)


def _scoped_page(request, viewer: Viewer, view: View, org, key):
    scope = _scope(view, organization_id=org.pk, api_key_id=key.pk if key else None)
    rows = usage_aggregate(scope, ("model_name",), bucket=view.bucket, tokens=False)  # the charts
    detail = usage_aggregate(scope, ("api_key_id", "model_name"), histograms=True)  # feeds by model and by key
    by_model = regroup(detail, ("model_name",))
    by_key = regroup(detail, ("api_key_id",))
    _, key_names = panels.names_for(by_key)
    keys = {k.pk: k for k in org.api_keys.all()}
    charts = _charts_context(view, scope, rows, "model_name", {}, view.query(at=""))
    key_labels = [{**r, "prefix": key_names.get(r["api_key_id"], "(deleted)"),
                   "label": keys[r["api_key_id"]].label if r["api_key_id"] in keys else ""}
                  for r in panels.ranked(by_key, "api_key_id", limit=50)]
    charts["by_key"] = {"labels": [k["prefix"] for k in key_labels], "data": [float(k["cost"]) for k in key_labels],
                        "filters": ["key=" + k["prefix"] for k in key_labels]}
    charts["by_model"] = {"labels": [r["model_name"] or "(none)" for r in panels.ranked(by_model, "model_name", 20)],
                          "data": [float(r["cost"]) for r in panels.ranked(by_model, "model_name", 20)],
                          "filters": ["model=" + r["model_name"] for r in panels.ranked(by_model, "model_name", 20)]}
    budgets = Budget.objects.select_related("organization", "api_key").filter(organization=org)
    budgets = budgets.filter(api_key=key) | budgets.filter(api_key__isnull=True) if key else budgets
    return _page(
        request, "dashboard/scoped.html", viewer, view,
        org=org, key=key, summary=panels.summary(by_model), charts=charts,
        latency=panels.latency_by_model(by_model), keys=key_labels,
        gauges=panels.budget_spend(list(budgets)),
        recent=panels.recent_ledger(org, key),
        alerts=panels.recent_alerts(org),
    )


def _ledger_rows(viewer: Viewer, view: View):
    start, end = view.window()
    rows = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    if not viewer.staff:
        # A member's ledger is their organization's, whatever the URL says.
        org = organization_for(viewer, view.org or viewer.organization.slug)
        rows = rows.filter(organization=org)
    elif view.org:
        org = organization_for(viewer, view.org)
        rows = rows.filter(organization=org)
    else:
        org = None
    if view.key:
        if org is None:
            raise Http404("A key filter needs its organization (org=...).")
        rows = rows.filter(api_key=key_for(org, view.key))
    if view.model:
        rows = rows.filter(model_name=view.model)
    if view.provider:
        rows = rows.filter(provider=view.provider)
    if view.status == "errors":
        rows = rows.filter(status__gte=400)
    return rows.select_related("organization", "api_key").defer("prompt_text", "completion_text"), org


@dashboard_view
def ledger(request, viewer: Viewer, view: View):
    """The ledger rows behind a chart: this view's filters, newest first, keyset-paged by id."""
    rows, org = _ledger_rows(viewer, view)
    before = request.GET.get("before", "")
    if before.isdigit():
        rows = rows.filter(id__lt=int(before))
    page = list(rows.order_by("-id")[: LEDGER_PAGE + 1])
    more = len(page) > LEDGER_PAGE
    page = page[:LEDGER_PAGE]
    return _page(request, "dashboard/ledger.html", viewer, view, org=org, rows=page,
                 next_before=page[-1].id if more else None)


@dashboard_view
def export_csv(request, viewer: Viewer, view: View):
    """What the page shows, as CSV, streamed: one row per bucket, organization, key and model."""
    filters = {}
    if not viewer.staff:
        org = organization_for(viewer, view.org or viewer.organization.slug)
        filters["organization_id"] = org.pk
    elif view.org:
        org = organization_for(viewer, view.org)
        filters["organization_id"] = org.pk
    else:
        org = None
    if view.key:
        if org is None:
            raise Http404("A key filter needs its organization (org=...).")
        filters["api_key_id"] = key_for(org, view.key).pk
    scope = _scope(view, **filters)
    rows = usage_aggregate(scope, ("organization_id", "api_key_id", "model_name"), bucket=view.bucket)
    org_names, key_names = panels.names_for(rows)
    rows.sort(key=lambda r: (r["bucket"], org_names.get(r["organization_id"], ""), key_names.get(r["api_key_id"], ""), r["model_name"]))
    labels = {b: panels.label_text(b) for b in {r["bucket"] for r in rows}}
    time_zone = view.tz or "UTC"

    def lines():
        # A chunk per CSV_CHUNK rows, not one per row: a week of every organization is ~20,000 rows.
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["bucket", "time_zone", "organization", "key_prefix", "model", "requests", "errors",
                         "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd"])
        from billing.admin import _cell as cell

        for i, r in enumerate(rows, 1):
            writer.writerow([
                labels[r["bucket"]], time_zone, org_names.get(r["organization_id"], ""),
                key_names.get(r["api_key_id"], ""), cell(r["model_name"]), r["requests"], r["errors"],
                r["prompt_tokens"], r["completion_tokens"], r["cache_read_tokens"], r["cache_write_tokens"],
                format(r["cost"], "f"),
            ])
            if i % CSV_CHUNK == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    start, end = view.window()
    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="usage-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}.csv"'
    return response


