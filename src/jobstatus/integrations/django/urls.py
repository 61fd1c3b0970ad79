"""URL patterns: ``path("jobs/", include("jobstatus.integrations.django.urls"))``.

``reverse("jobstatus:job", args=[job_id])`` gives a job's URL.
"""

from __future__ import annotations

from django.urls import path

from .views import job_status

app_name = "jobstatus"

urlpatterns = [
    path("<path:job_id>", job_status, name="job"),
]
