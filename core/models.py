from __future__ import annotations

from django.db import models
from django.utils import timezone


class CacheVersion(models.Model):
    """The current version of one per-process cache (core.versioned_cache).

    In the database, the one store every process and instance shares in every deployment, so a
    change made anywhere (a command, the admin, another instance) reaches every running server.
    Each change writes a new random token: a version never repeats, so no process can mistake a
    later state for the one it cached.
    """

    name = models.CharField(max_length=40, primary_key=True)
    token = models.CharField(max_length=32)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "orgs_cacheversion"  # moved from orgs (core 0001): the table kept its name

    def __str__(self) -> str:
        return f"{self.name} @ {self.token}"
