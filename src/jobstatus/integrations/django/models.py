"""The table behind ``DjangoDatabaseStore``: one row per job id."""

from __future__ import annotations

from django.db import models


class JobStatusRecord(models.Model):  # type: ignore[misc]  # Django ships no type stubs
    """One job's status record (``record`` is its JSON text).

    ``updated_at`` and ``expires_at`` are epoch seconds (floats), as in the
    SQLite store, so listing pages and expiry compare plain numbers. A row
    whose ``expires_at`` has passed reads as absent and is purged by later writes.
    """

    job_id = models.CharField(max_length=512, primary_key=True)
    # JSON as text, not JSONField: PostgreSQL's jsonb refuses "\u0000" in strings,
    # and the record must round-trip exactly on every database.
    record = models.TextField(default="{}")
    status = models.CharField(max_length=16, blank=True, default="")
    updated_at = models.FloatField(default=0.0)
    expires_at = models.FloatField(default=0.0)
    parent = models.CharField(max_length=512, null=True, blank=True, default=None)  # its group
    name = models.CharField(max_length=512, null=True, blank=True, default=None)  # its task

    class Meta:
        app_label = "jobstatus"
        db_table = "jobstatus_record"
        indexes = [
            models.Index(fields=["status", "updated_at"], name="jobstatus_status_updated"),
            models.Index(fields=["updated_at"], name="jobstatus_updated"),
            models.Index(fields=["expires_at"], name="jobstatus_expires"),
            models.Index(fields=["parent", "job_id"], name="jobstatus_parent"),
            models.Index(fields=["name", "job_id"], name="jobstatus_name"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.status or '-'}"
