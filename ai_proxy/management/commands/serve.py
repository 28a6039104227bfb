import os
import shutil
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
        self._instance_dir_prepare(opts["port"])
        args = [
            # granian's command line, plus the readiness grace on SIGTERM (gateway_site.granian_main).
            sys.executable, "-m", "gateway_site.granian_main",
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

    def _instance_dir_prepare(self, port: int) -> None:
        """This instance's runtime directory, emptied: its workers' Prometheus files (multiprocess
        mode: /metrics adds up every worker) and the `draining` flag /api/ai/health/ready reads."""
        root = os.environ.get("GATEWAY_RUN_DIR") or str(settings.VAR_DIR / "run")
        instance = os.path.join(root, f"instance-{port}")
        shutil.rmtree(instance, ignore_errors=True)
        os.makedirs(os.path.join(instance, "metrics"))
        os.environ["GATEWAY_INSTANCE_DIR"] = instance
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(instance, "metrics")
        os.environ["GATEWAY_READY_GRACE_SECONDS"] = str(settings.GATEWAY_READY_GRACE_SECONDS)
