"""Plain synchronous Django views: the row and the job in one `transaction.atomic()`."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from examples.django_app.models import Signup
from examples.django_app.tasks import send_welcome_email
from taskrunner.contrib.django import enqueue


class PaymentDeclined(Exception):
    """Something that goes wrong in the view after the job was enqueued."""


@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email = request.POST["email"]
    try:
        with transaction.atomic():
            row = Signup.objects.create(email=email)
            job_id = enqueue(send_welcome_email.name, row.id, email)  # on Django's connection
            if request.POST.get("card") == "declined":
                raise PaymentDeclined(f"card for {email} was declined")
    except PaymentDeclined as exc:  # the block rolled back: no row, no job
        return JsonResponse({"error": str(exc)}, status=402)
    return JsonResponse(
        {"signup_id": row.id, "job_id": job_id, "request_id": request.request_id},  # type: ignore[attr-defined]
        status=201,
    )
