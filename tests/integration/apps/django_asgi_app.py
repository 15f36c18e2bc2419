"""A one-file Django project served through Django's own ASGI handler
(django.core.asgi.get_asgi_application), for the `-k asgi` tests.

  /sync/          a plain (sync) view: method, path, query and SCRIPT_NAME as JSON
  /async/         an async view
  /post/          POST: the body's length and its first bytes (CSRF exempt)
"""

import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="gunicorn-c-tests-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def sync_view(request):
    return JsonResponse({"kind": "sync", "method": request.method, "path": request.path,
                         "q": request.GET.get("q"), "script_name": request.META.get("SCRIPT_NAME")})


async def async_view(request):
    return JsonResponse({"kind": "async", "path": request.path})


@csrf_exempt
def post_view(request):
    body = request.body
    return HttpResponse(json.dumps({"length": len(body), "head": body[:16].decode("latin-1")}),
                        content_type="application/json")


urlpatterns = [path("sync/", sync_view), path("async/", async_view), path("post/", post_view)]

application = get_asgi_application()
