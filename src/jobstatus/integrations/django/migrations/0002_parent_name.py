"""Groups and names: each row names its group and its task, indexed for listing."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]
    dependencies = [("jobstatus", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="jobstatusrecord",
            name="parent",
            field=models.CharField(blank=True, default=None, max_length=512, null=True),
        ),
        migrations.AddField(
            model_name="jobstatusrecord",
            name="name",
            field=models.CharField(blank=True, default=None, max_length=512, null=True),
        ),
        migrations.AddIndex(
            model_name="jobstatusrecord",
            index=models.Index(fields=["parent", "job_id"], name="jobstatus_parent"),
        ),
        migrations.AddIndex(
            model_name="jobstatusrecord",
            index=models.Index(fields=["name", "job_id"], name="jobstatus_name"),
        ),
    ]
