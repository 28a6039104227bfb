"""`python -m gateway_site.granian_main ARGS`: granian's own command line (what `manage.py serve`
execs), with a readiness grace on SIGTERM.

Granian closes its listener the moment it is told to stop, so an instance could never answer
/api/ai/health/ready with 503 while draining. Here the first SIGTERM only creates the instance's
`draining` file (GATEWAY_INSTANCE_DIR, read by the ready endpoint) and keeps serving for
GATEWAY_READY_GRACE_SECONDS, so load balancers polling ready stop sending new requests; then
granian's normal graceful stop runs: the listener closes, requests and streams in flight finish
(for up to --workers-kill-timeout), the workers' lifespan shutdown writes the ledger. SIGINT
(Ctrl-C) and a second SIGTERM stop at once, as before. Only the granian main process (no Django)
runs this module.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from granian.server.common import AbstractServer

_graceful_stop = AbstractServer.signal_handler_interrupt
_draining = threading.Event()


def _signal_handler_interrupt(self, signum=None, frame=None, *args, **kwargs):
    grace = float(os.environ.get("GATEWAY_READY_GRACE_SECONDS") or 0)
    instance = os.environ.get("GATEWAY_INSTANCE_DIR")
    if signum == signal.SIGTERM and not _draining.is_set():
        _draining.set()
        if instance:
            Path(instance, "draining").touch()
        if grace > 0:
            timer = threading.Timer(grace, _graceful_stop, (self,))
            timer.daemon = True
            timer.start()
            return
    _graceful_stop(self)


AbstractServer.signal_handler_interrupt = _signal_handler_interrupt

if __name__ == "__main__":
    from granian.cli import entrypoint

    entrypoint()
