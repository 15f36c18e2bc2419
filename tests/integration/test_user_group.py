"""Switching users and groups in the workers (-u, -g, --initgroups).

Split out of test_signals.py (test names unchanged).
"""

import grp
import os
import pwd

import pytest

from conftest import embedded_python
from helpers import info


# --- users and groups ----------------------------------------------------------------------


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
# Workers go on importing after they switch users.
nobody_reads_python = pytest.mark.skipif(
    not embedded_python().others_can_read(),
    reason=f"nobody cannot read the server's Python ({embedded_python().stdlib})")


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


@needs_root
@nobody_reads_python
def test_user_and_group(start_server):
    uid, gid = nobody()
    group = grp.getgrgid(gid).gr_name
    srv = start_server("lifecycle:app", "-u", "nobody", "-g", group)
    got = info(srv.port)
    assert (got["uid"], got["gid"]) == (uid, gid)
    assert got["groups"] == []  # root's supplementary groups are dropped
    assert os.stat(f"/proc/{srv.pid}").st_uid == 0  # the master stays root


@needs_root
@nobody_reads_python
def test_user_by_number_takes_its_primary_group(start_server):
    uid, gid = nobody()
    srv = start_server("lifecycle:app", "-u", str(uid))
    got = info(srv.port)
    assert (got["uid"], got["gid"]) == (uid, gid)


@needs_root
@nobody_reads_python
def test_initgroups(start_server):
    uid, gid = nobody()
    srv = start_server("lifecycle:app", "-u", "nobody", "--initgroups")
    got = info(srv.port)
    expected = sorted({gid} | {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem})
    assert got["groups"] == expected


def test_unknown_user_is_a_config_error(start_server):
    srv = start_server("lifecycle:app", "-u", "no-such-user-here", wait=False)
    assert srv.wait(10) == 1
    assert "Error: No such user: 'no-such-user-here'" in srv.log_text()
    assert "Listening at" not in srv.log_text()
