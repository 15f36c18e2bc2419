"""Production settings for a project made by `django-admin startproject myproject`.

Copy this file next to the project's settings.py (myproject/settings_production.py)
and point DJANGO_SETTINGS_MODULE at it: it starts from settings.py and changes only
what production needs. examples/django/README.md is the whole recipe.
"""

import os

from .settings import *  # noqa: F401,F403
from .settings import BASE_DIR, MIDDLEWARE

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h]

# `manage.py collectstatic` copies every app's static files here; nginx serves this
# directory at /static/ (examples/deploy/nginx-site.conf).
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR / "static"))

# Without nginx in front (a container, a platform's router), WhiteNoise serves
# STATIC_ROOT from the application (Debian: python3-whitenoise). Behind nginx it is
# harmless: nginx answers /static/ before a request reaches Django.
MIDDLEWARE = list(MIDDLEWARE)
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "whitenoise.middleware.WhiteNoiseMiddleware")

# The site is served over https (nginx terminates TLS). Django needs no
# SECURE_PROXY_SSL_HEADER: gunicorn-c already sets wsgi.url_scheme from nginx's
# X-Forwarded-Proto, so request.is_secure() is right.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
