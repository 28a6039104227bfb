"""Formatting for the dashboards. None renders as "—" (no data), which is never the same as 0."""

from decimal import Decimal

from django import template

register = template.Library()
NO_DATA = "—"


@register.filter
def usd(value) -> str:
    if value is None:
        return NO_DATA
    value = Decimal(value)
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:,.4f}"


@register.filter
def pct(value) -> str:
    return NO_DATA if value is None else f"{value:.1f}%"


@register.filter
def ms(value) -> str:
    if value is None:
        return NO_DATA
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


@register.filter
def bar(value) -> str:
    return "0" if value is None else f"{min(100.0, max(0.0, value)):.1f}"


@register.filter
def q(view, change: str) -> str:
    """view.query() with one "name=value" change (an empty value drops the parameter)."""
    name, _, value = change.partition("=")
    return view.query(**{name: value})
