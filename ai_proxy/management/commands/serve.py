import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve the gateway with the production ASGI server (granian; README.md says why). "
        "Without REDIS_URL, shared state lives in process memory, so only one worker is allowed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=19000)
        parser.add_argument("--workers", type=int, help="Default: 1 without REDIS_URL, else the CPU count.")

    def handle(self, *args, **opts) -> None:
        workers = opts["workers"] or (os.cpu_count() or 1 if settings.REDIS_URL else 1)
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                "--workers > 1 needs REDIS_URL: rate limits, budgets and route cool-downs must be shared by every worker."
            )
        args = [
            sys.executable, "-m", "granian",
            "--interface", "asgi",
            "--host", opts["host"],
            "--port", str(opts["port"]),
            "--workers", str(workers),
            "--loop", "uvloop",
            "--no-ws",
            # Thousands of open streams per process: granian's default backpressure
            # (backlog / workers = 1024) would queue the rest.
            "--backlog", "4096",
            "--backpressure", "4096",
            # SIGTERM: stop accepting, let requests in flight finish for GATEWAY_DRAIN_SECONDS,
            # then stop the worker (what it could not finish is recorded lost in flight).
            "--workers-kill-timeout", str(settings.GATEWAY_DRAIN_SECONDS),
            # A worker that dies (OOM, SIGKILL) is replaced instead of taking the instance down.
            "--respawn-failed-workers",
            "--log-level", "warning",
            "gateway_site.asgi:application",
        ]
        self.stdout.write(f"Serving on http://{opts['host']}:{opts['port']} with {workers} worker(s) (granian)")
        self.stdout.flush()
        os.execv(sys.executable, args)
