"""Makes the Django project of the bench at run time, the way a user starts one.

`make(directory)` runs `django-admin startproject benchsite` (Debian's python3-django)
into an empty directory, then adds one view, `/` answering "Hello, World!", and turns
DEBUG off. The request goes through the whole default stack: the WSGI handler, every
middleware startproject lists (security, sessions, common, CSRF, auth, messages,
clickjacking), the URL resolver and an HttpResponse. No database is touched: the view
reads no session and no user.
"""

import os
import subprocess
import sys

VIEWS = '''from django.http import HttpResponse


def hello(request):
    return HttpResponse(b"Hello, World!", content_type="text/plain")
'''

URLS = '''from django.urls import path

from benchsite import views

urlpatterns = [path("", views.hello)]
'''


def make(directory, python=sys.executable):
    """Creates the project in DIRECTORY; returns the WSGI module to serve."""
    subprocess.run([python, "-m", "django", "startproject", "benchsite", directory],
                   check=True)
    pkg = os.path.join(directory, "benchsite")
    with open(os.path.join(pkg, "views.py"), "w") as f:
        f.write(VIEWS)
    with open(os.path.join(pkg, "urls.py"), "w") as f:
        f.write(URLS)
    with open(os.path.join(pkg, "settings.py"), "a") as f:
        f.write('\nDEBUG = False\nALLOWED_HOSTS = ["*"]\n')
    return "benchsite.wsgi:application"


if __name__ == "__main__":
    print(make(sys.argv[1]))
