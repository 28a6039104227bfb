from core import deferred

from . import background
from .celery import app as celery_app

# The apps queue work through core.deferred; this package decides how it runs (see background).
deferred.runner_register(background)

__all__ = ("celery_app",)
