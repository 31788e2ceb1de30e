"""``path("admin/jobs/", include("conveyor.contrib.django.urls"))``: the dashboard, staff only."""

from __future__ import annotations

from django.urls import path

from .dashboard import dashboard

app_name = "conveyor"
urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("<path:path>", dashboard, name="dashboard-path"),
]
