"""The base class for the gateway's DRF views under /api/ai/."""

from __future__ import annotations

from django.db import close_old_connections, connection
from rest_framework.views import APIView


class ApiView(APIView):
    """An APIView that checks its thread's database connections first.

    /api/ai/ is served by the lean handler (gateway_site.api_handler), which skips Django's
    request_started signal, so this does its job: drop a connection that died (a PostgreSQL
    restart) or outlived CONN_MAX_AGE before the view, or authentication, uses it.
    """

    def initial(self, request, *args, **kwargs):
        # Inside a transaction (a test case's, say) the connection is in use: leave it alone,
        # as Django's own test client does by disconnecting close_old_connections.
        if not connection.in_atomic_block:
            close_old_connections()
        super().initial(request, *args, **kwargs)
