"""The model catalog as the request path sees it: an immutable snapshot, cached per process and
dropped everywhere within a second of any catalog change (see core.versioned_cache)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal

from core.versioned_cache import VersionedCache

from .models import CatalogModel
from .provider_kinds import registered_kinds
from .route_options import allowed_options_parse

logger = logging.getLogger(__name__)

catalog_cache = VersionedCache("catalog")


@dataclass(frozen=True)
class ProviderEntry:
    id: int
    name: str
    kind: str
    base_url: str
    api_key_env: str
    connect_timeout: float
    timeout: float
    # From its kind's adapter when the snapshot is built, not asked on every request (routing
    # checks each route's secret per request).
    needs_secret: bool = True

    def secret(self) -> str | None:
        """Read at call time so an operator can set the variable and restart without a DB edit."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


@dataclass(frozen=True)
class RouteEntry:
    id: int
    provider: ProviderEntry
    upstream_model: str
    weight: int
    priority: int
    drop_unsupported_params: bool
    allowed_options: frozenset[str] = frozenset()  # see ai_proxy.priced_options


@dataclass(frozen=True)
class ModelEntry:
    id: int
    public_id: str
    display_name: str
    provider_label: str
    best_for: str
    speed_tier: str
    cost_tier: str
    input_price: Decimal | None
    output_price: Decimal | None
    cache_read_price: Decimal | None
    cache_write_price: Decimal | None
    max_output_tokens: int
    context_window: int
    created: int
    routes: tuple[RouteEntry, ...] = field(default=())
    web_search_price: Decimal | None = None  # USD per 1,000 searches
    model_type: str = "chat"  # CatalogModel.ModelType: which operations may serve it (Operation.model_type)
    dimensions: int | None = None  # embedding models: the default vector size

    @property
    def is_priced(self) -> bool:
        return self.input_price is not None and self.output_price is not None


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelEntry]  # by public id, enabled models only
    names: dict[str, str]  # public id or alias -> public id

    def resolve(self, name: str) -> ModelEntry | None:
        public_id = self.names.get(name)
        return self.models.get(public_id) if public_id else None


def _kind_served(provider, kinds: list[str]) -> bool:
    # A kind no adapter serves (a row written behind the admin's validation, or an adapter since
    # removed) cannot be called: its routes are left out, loudly, rather than failing requests.
    if provider.kind in kinds:
        return True
    logger.error("provider %s has kind %r, which no adapter serves: its routes are skipped", provider.name,
                 provider.kind)
    return False


def _load() -> Catalog:
    models: dict[str, ModelEntry] = {}
    names: dict[str, str] = {}
    kinds = registered_kinds()
    queryset = CatalogModel.objects.filter(enabled=True).prefetch_related("aliases", "routes__provider")
    for m in queryset:
        routes = tuple(
            RouteEntry(
                id=r.pk,
                provider=ProviderEntry(
                    id=r.provider.pk,
                    name=r.provider.name,
                    kind=r.provider.kind,
                    base_url=r.provider.base_url.rstrip("/"),
                    api_key_env=r.provider.api_key_env,
                    connect_timeout=r.provider.connect_timeout_seconds,
                    timeout=r.provider.timeout_seconds,
                    needs_secret=r.provider.needs_secret,
                ),
                upstream_model=r.upstream_model,
                weight=r.weight,
                priority=r.priority,
                drop_unsupported_params=r.drop_unsupported_params,
                allowed_options=allowed_options_parse(r.allowed_options),
            )
            for r in sorted(m.routes.all(), key=lambda r: (r.priority, -r.weight, r.pk))
            if r.enabled and r.provider.enabled and _kind_served(r.provider, kinds)
        )
        models[m.public_id] = ModelEntry(
            id=m.pk,
            public_id=m.public_id,
            display_name=m.display_name,
            provider_label=m.provider_label,
            best_for=m.best_for,
            speed_tier=m.speed_tier,
            cost_tier=m.cost_tier,
            input_price=m.input_price_per_mtok,
            output_price=m.output_price_per_mtok,
            cache_read_price=m.cache_read_price_per_mtok,
            cache_write_price=m.cache_write_price_per_mtok,
            max_output_tokens=m.max_output_tokens,
            context_window=m.context_window,
            created=int(m.created_at.timestamp()),
            routes=routes,
            web_search_price=m.web_search_price_per_1k,
            model_type=m.model_type,
            dimensions=m.dimensions,
        )
        for alias in m.aliases.all():
            names.setdefault(alias.alias, m.public_id)
    # A public id always wins over another model's alias of the same name.
    names.update({public_id: public_id for public_id in models})
    return Catalog(models=models, names=names)


async def catalog_get() -> Catalog:
    return await catalog_cache.get_or_load("all", _load)


def catalog_get_sync() -> Catalog:
    return catalog_cache.get_or_load_sync("all", _load)
