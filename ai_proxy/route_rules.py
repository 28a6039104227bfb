"""Which provider kinds can serve which catalog model types, as the catalog's validation asks
(catalog.route_support): a route the request path could never use is refused where the operator
makes it, not discovered on the first request."""

from __future__ import annotations

# Provider kinds whose wire dialect has an embeddings endpoint (OpenAI's `/embeddings`).
EMBEDDING_KINDS = ("openai", "mock")


def route_serves_model_type(provider_kind: str, model_type: str) -> str | None:
    """None when a `provider_kind` route can serve a `model_type` model, else why not."""
    if model_type == "embedding" and provider_kind not in EMBEDDING_KINDS:
        return (f"`{provider_kind}` providers have no embeddings endpoint; route embedding models to an "
                "OpenAI-compatible provider.")
    return None
