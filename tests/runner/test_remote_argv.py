"""--remote URLs as an attacker writes them: an ssh stand-in records its argv, which must never carry
an option that came from the URL. Cases are generated (user x host x port x form), not listed."""

from __future__ import annotations

import itertools
import json
import os
import stat
import string
import sys

import pytest

from edgecn.errors import EdgecnError
from edgecn.runner.remote import Ssh, parse_target

USERS = ["pi", "ubuntu_1", "a.b-c", "-oProxyCommand=touch${IFS}pwned", "-l", "-", "a b", "a\tb", "pi\n", "pi;id",
         "$(id)", "`id`", "a\x00b", "\u00fc", "a@b", "x" * 65]
HOSTS = ["raspberrypi.local", "10.0.0.2", "[::1]", "[fe80::1]", "pi5", "-oProxyCommand=touch${IFS}pwned", "-p",
         "-host", "a b", "h;id", "h\n", "$(id)", "", "[::1", "[x]", "h/..", "a" * 254, "h..x", "\u00e9.local"]
PORTS = [None, "22", "2222", "65535", "0", "65536", "99999", "22x", "-1", " 22", "1e3", "-oX", ""]
FORMS = ["ssh://{}", "{}", "ssh://{}/"]
SAFE = set(string.ascii_letters + string.digits + "._-@[]:")


def _url(form, user, host, port):
    where = (f"{user}@" if user is not None else "") + host + (f":{port}" if port is not None else "")
    return form.format(where)


CASES = [_url(f, u, h, p) for f, u, h, p in itertools.product(FORMS, [None, *USERS], HOSTS, PORTS)]


@pytest.fixture
def ssh_stand_in(tmp_path, monkeypatch):
    """``ssh`` on PATH that appends its argv to a file and fails like an unreachable host."""
    log = tmp_path / "argv.jsonl"
    script = tmp_path / "bin" / "ssh"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"with open({str(log)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
                      "sys.exit(255)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_hostile_remote_urls_never_reach_ssh_as_options(ssh_stand_in):
    accepted = refused = 0
    for url in CASES:
        try:
            dest, port = parse_target(url)
        except EdgecnError as e:
            refused += 1
            assert e.fix and "ssh://" in e.fix
            continue
        accepted += 1
        assert not dest.startswith("-") and set(dest) <= SAFE, url
        assert port is None or 1 <= port <= 65535, url
        Ssh(url, key="/k", options=["StrictHostKeyChecking=no"]).run(["true"], check=False)
    runs = [json.loads(line) for line in ssh_stand_in.read_text().splitlines()]
    assert len(runs) == accepted
    for argv in runs:
        cut = argv.index("--")
        before, after = argv[:cut], argv[cut + 1:]
        allowed = {"-i", "/k", "-o", "BatchMode=yes", "StrictHostKeyChecking=no", "ConnectTimeout=15", "-p",
                   "ServerAliveInterval=15", "ServerAliveCountMax=4"}
        assert "ConnectTimeout=15" in before, argv  # an unreachable device fails in seconds
        assert "ServerAliveInterval=15" in before, argv  # and one that vanishes mid-run in about a minute
        assert all(a in allowed or a.isdigit() for a in before), argv
        assert len(after) == 2 and not after[0].startswith("-"), argv
    assert accepted >= 100 and refused >= 1000, (accepted, refused)
    print(f"remote URLs: {len(CASES)} generated, {accepted} accepted and recorded, {refused} refused")


@pytest.mark.parametrize("url, dest, port", [
    ("ssh://pi@raspberrypi.local", "pi@raspberrypi.local", None),
    ("pi@10.0.0.2:2222", "pi@10.0.0.2", 2222),
    ("ssh://[::1]:22", "[::1]", 22),
    ("jetson", "jetson", None),
])
def test_ssh_forms_users_type_are_accepted(url, dest, port):
    assert parse_target(url) == (dest, port)


def test_an_explicit_connect_timeout_wins_and_tune_passes_the_host_key_choice():
    from edgecn.cost.measure import Timer

    ssh = Ssh("pi@host", key=None, options=["ConnectTimeout=3"])
    assert [o for o in ssh.common if "ConnectTimeout" in o] == ["ConnectTimeout=3"]
    assert "accept_new_host_key" in {f.name for f in __import__("dataclasses").fields(Timer)}
    from edgecn.cli import build_parser

    args = build_parser().parse_args(["tune", "--target", "rpi5", "--model", "condensenet-light", "--remote", "pi@host",
                                      "--accept-new-host-key"])
    assert args.accept_new_host_key
