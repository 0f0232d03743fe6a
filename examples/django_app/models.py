"""The app's own data, written in the same transaction as its jobs."""

from __future__ import annotations

from django.db import models


class Signup(models.Model):
    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "django_app"
