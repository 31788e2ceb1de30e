"""The Django app config of ``conveyor.contrib.django``."""

from __future__ import annotations

from django.apps import AppConfig


class ConveyorConfig(AppConfig):  # type: ignore[misc]  # Django is untyped here
    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "conveyor"
