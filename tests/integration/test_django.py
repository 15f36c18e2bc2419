"""Django, deployed the classic way: a project made by `django-admin startproject`
(Debian's python3-django) in a temporary directory, served as `gunicorn-c
myproject.wsgi`, with and without `--env DJANGO_SETTINGS_MODULE=...`.

The project gets an sqlite database (migrate) and a superuser, so that the admin's
login form can be posted with its CSRF token, plus a small form view of our own."""

import re
import subprocess
import sys

import pytest
import requests

from conftest import CRASH_RE, run_cli, server_env, skip_unless_server_imports

pytest.importorskip("django")
skip_unless_server_imports("django")

FORM_VIEW = '''\
from django.conf import settings
from django.http import HttpResponse
from django.middleware.csrf import get_token


def form(request):
    if request.method == "POST":
        return HttpResponse("posted " + request.POST.get("name", ""))
    token = get_token(request)
    return HttpResponse('<form method="post"><input type="hidden" '
                        'name="csrfmiddlewaretoken" value="%s"></form>' % token)


def which(request):
    return HttpResponse(settings.GC_WHICH)
'''

URLS_EXTRA = '''
from myproject import views_gc  # noqa: E402

urlpatterns += [path("form/", views_gc.form), path("which/", views_gc.which)]
'''


def manage(project, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=project, check=True,
                   env=server_env(), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("django")
    subprocess.run([sys.executable, "-m", "django", "startproject", "myproject", str(root)],
                   check=True, env=server_env(), capture_output=True, text=True, timeout=60)
    pkg = root / "myproject"
    (pkg / "views_gc.py").write_text(FORM_VIEW)
    with open(pkg / "urls.py", "a") as f:
        f.write(URLS_EXTRA)
    with open(pkg / "settings.py", "a") as f:
        f.write('\nGC_WHICH = "default"\n')
    (pkg / "settings_alt.py").write_text('from myproject.settings import *  # noqa\n'
                                         'GC_WHICH = "alt"\n')
    manage(root, "migrate", "-v0")
    manage(root, "shell", "-c",
           "from django.contrib.auth.models import User; "
           "User.objects.create_superuser('admin', 'admin@example.com', 'gc-secret')")
    return root


def base(srv):
    return f"http://127.0.0.1:{srv.port}"


def csrf_token(html):
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def test_wsgi_module(start_server, project):
    srv = start_server("myproject.wsgi", app_dir=project, workers=2)
    r = requests.get(base(srv) + "/admin/login/", timeout=10)
    assert r.status_code == 200
    assert "Django administration" in r.text
    assert "csrftoken" in r.cookies
    # The admin itself redirects to its login page.
    r = requests.get(base(srv) + "/admin/", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"] == "/admin/login/?next=/admin/"


def test_settings_module_from_env(start_server, project):
    srv = start_server("myproject.wsgi:application", "--env",
                       "DJANGO_SETTINGS_MODULE=myproject.settings", app_dir=project)
    r = requests.get(base(srv) + "/admin/login/", timeout=10)
    assert r.status_code == 200
    assert requests.get(base(srv) + "/which/", timeout=10).text == "default"


def test_env_chooses_the_settings(start_server, project):
    # wsgi.py only sets DJANGO_SETTINGS_MODULE when it is not set yet, so --env wins.
    srv = start_server("myproject.wsgi", "-e", "DJANGO_SETTINGS_MODULE=myproject.settings_alt",
                       app_dir=project)
    assert requests.get(base(srv) + "/which/", timeout=10).text == "alt"


def test_form_post_with_csrf_token(start_server, project):
    srv = start_server("myproject.wsgi", app_dir=project)
    with requests.Session() as s:
        token = csrf_token(s.get(base(srv) + "/form/", timeout=10).text)
        r = s.post(base(srv) + "/form/", data={"csrfmiddlewaretoken": token, "name": "gc"},
                   timeout=10)
        assert (r.status_code, r.text) == (200, "posted gc")
    # Without the token Django refuses the form.
    r = requests.post(base(srv) + "/form/", data={"name": "gc"}, timeout=10)
    assert r.status_code == 403


def test_admin_login(start_server, project):
    srv = start_server("myproject.wsgi", app_dir=project)
    with requests.Session() as s:
        page = s.get(base(srv) + "/admin/login/?next=/admin/", timeout=10)
        form = {"csrfmiddlewaretoken": csrf_token(page.text), "username": "admin",
                "password": "gc-secret", "next": "/admin/"}
        r = s.post(base(srv) + "/admin/login/?next=/admin/", data=form, allow_redirects=False,
                   timeout=10)
        assert r.status_code == 302, r.text[:500]
        assert r.headers["Location"] == "/admin/"
        r = s.get(base(srv) + "/admin/", timeout=10)
        assert r.status_code == 200
        assert "Site administration" in r.text


def test_check_config(project):
    out = run_cli("--check-config", "myproject.wsgi", cwd=project)
    assert out.returncode == 0, out.stderr
    assert not CRASH_RE.search(out.stderr), out.stderr
