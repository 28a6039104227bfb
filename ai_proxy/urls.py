from django.urls import path

from . import openapi, proxy_views, views

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("health/live", views.HealthLiveApi.as_view(), name="health-live"),
    path("health/ready", views.HealthReadyApi.as_view(), name="health-ready"),
    path("models", views.ModelListApi.as_view(), name="models"),
    path("models/<path:model_id>", views.ModelDetailApi.as_view(), name="model-detail"),
    path("chat/completions", proxy_views.chat_completions, name="chat-completions"),
    # OpenAI(base_url=".../api/ai") calls /embeddings; clients configured with a /v1 base the other.
    path("embeddings", proxy_views.embeddings, name="embeddings"),
    path("v1/embeddings", proxy_views.embeddings),
    # The OpenAI Responses API (the AI SDK's default `openai(model)`); /v1/responses for clients
    # configured with a base URL that ends before /v1.
    path("responses", proxy_views.responses, name="responses"),
    path("v1/responses", proxy_views.responses),
    # Anthropic(base_url=".../api/ai/anthropic") calls /v1/messages; the AI SDK and the seed guide
    # call /messages. Same view.
    path("anthropic/v1/messages", proxy_views.anthropic_messages, name="anthropic-messages"),
    path("anthropic/messages", proxy_views.anthropic_messages, name="anthropic-messages-short"),
    path("anthropic/v1/messages/count_tokens", proxy_views.anthropic_messages_count_tokens, name="anthropic-count-tokens"),
    path("anthropic/messages/count_tokens", proxy_views.anthropic_messages_count_tokens),
    path("anthropic/v1/models", proxy_views.anthropic_models_list, name="anthropic-models"),
    path("anthropic/v1/models/<path:model_id>", proxy_views.anthropic_model_detail, name="anthropic-model-detail"),
    # Public, no key: the OpenAPI document and Swagger UI (assets from the static files, no CDN).
    path("openapi.json", openapi.openapi_json, name="openapi-json"),
    path("docs/", openapi.SwaggerDocsView.as_view(), name="openapi-docs"),
    path("docs", openapi.docs_redirect),
]
