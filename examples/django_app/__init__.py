"""A Django app that enqueues taskrunner jobs inside its own transactions.

    taskrunner migrate --app examples.django_app.tasks:runner   # taskrunner's tables
    python examples/django_app/manage.py migrate                # the app's table
    python examples/django_app/manage.py runserver
    taskrunner worker examples.django_app.tasks:runner          # runs the jobs

(from the repository root, with $TASKRUNNER_DSN naming the database; both use it.)

`POST /signup` (form fields `email`, optionally `card=declined`) saves a Signup and
enqueues a welcome email in one `transaction.atomic()` block, through
`taskrunner.contrib.django.enqueue` on Django's own connection: a declined card raises
after the enqueue and neither the row nor the job exists. The request id comes from
`X-Request-ID` (or is made) and is on the job and in the response. Django's CSRF
middleware guards the view as usual: a browser form sends `{% csrf_token %}`.
"""
