from django.urls import include, path

urlpatterns = [path("status/", include("jobstatus.integrations.django.urls"))]
