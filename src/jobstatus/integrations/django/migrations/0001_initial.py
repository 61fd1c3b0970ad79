"""The ``jobstatus_record`` table of the database store."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="JobStatusRecord",
            fields=[
                ("job_id", models.CharField(max_length=512, primary_key=True, serialize=False)),
                ("record", models.TextField(default="{}")),
                ("status", models.CharField(blank=True, default="", max_length=16)),
                ("updated_at", models.FloatField(default=0.0)),
                ("expires_at", models.FloatField(default=0.0)),
            ],
            options={
                "db_table": "jobstatus_record",
                "indexes": [
                    models.Index(fields=["status", "updated_at"], name="jobstatus_status_updated"),
                    models.Index(fields=["updated_at"], name="jobstatus_updated"),
                    models.Index(fields=["expires_at"], name="jobstatus_expires"),
                ],
            },
        ),
    ]
