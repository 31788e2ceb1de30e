from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/jobs/", include("conveyor.contrib.django.urls")),
    path("admin/", admin.site.urls),
]
