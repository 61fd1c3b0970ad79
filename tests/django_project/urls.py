from django.urls import include, path

urlpatterns = [path("jobs/", include("jobstatus.integrations.django.urls"))]
