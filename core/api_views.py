"""The base class for the gateway's DRF views under /api/ai/."""

from __future__ import annotations

from django.db import close_old_connections, connection
from drf_spectacular.utils import OpenApiResponse
from rest_framework.views import APIView

from core.errors import new_request_id, request_id_headers


class ApiView(APIView):
    """An APIView that checks its thread's database connections first.

    /api/ai/ is served by the lean handler (gateway_site.api_handler), which skips Django's
    request_started signal, so this does its job: drop a connection that died (a PostgreSQL
    restart) or outlived CONN_MAX_AGE before the view, or authentication, uses it.
    """

    def initialize_request(self, request, *args, **kwargs):
        # One id for the request, whether it ends in a body or in an error (the exception
        # handler reads it back): both SDKs expose it as `.request_id`.
        request.gateway_request_id = new_request_id()
        return super().initialize_request(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in request_id_headers(request.gateway_request_id).items():
            response.setdefault(name, value)
        return response

    def initial(self, request, *args, **kwargs):
        # Inside a transaction (a test case's, say) the connection is in use: leave it alone,
        # as Django's own test client does by disconnecting close_old_connections.
        if not connection.in_atomic_block:
            close_old_connections()
        super().initial(request, *args, **kwargs)


def error_doc(description: str) -> OpenApiResponse:
    """An error answer of a DRF view in the OpenAPI document: the OpenAI error body (core.errors),
    whose component the document's post-processing hook (ai_proxy.openapi) adds."""
    return OpenApiResponse(response={"$ref": "#/components/schemas/OpenAIError"}, description=description)


UNAUTHENTICATED = error_doc(
    "No API key, or a key that is unknown, revoked, expired or belongs to another vanity domain.")
DATABASE_DOWN = error_doc("The gateway's database is unreachable (`database_unavailable`).")
