# SPDX-License-Identifier: Apache-2.0
"""50 password files: "ferrymq passwd" (create, change, delete; password from stdin only;
atomic write with mode 0600) and CONNECT with username and password for 3.1.1 and 5.0
clients (raw, paho, mosquitto_pub): right credentials accepted, wrong ones refused with
return code 4 / 0x86 Bad User Name or Password, no username on a listener without anonymous
access refused with 5 / 0x87 Not authorized (spec 3.1.4 [MQTT-3.1.4-2], 3.2.2.2). The same
file feeds SCRAM-SHA-256 (spec 4.12)."""
import os
import re
import shutil
import stat
import subprocess
import types

import pytest

import ferrymq_harness as harness
from mqtt_helpers import (CONNACK, V311, V5, VERSIONS, Reason, connect_packet, free_ports)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)
from test_22_auth import ScramClient, connect_with_scram

LINE_RE = re.compile(r"^(?P<user>[^:]+):\$pbkdf2-sha512\$(?P<iterations>\d+)\$[A-Za-z0-9+/=]+"
                     r"\$[A-Za-z0-9+/=]+(:\$scram-sha-256\$\d+(\$[A-Za-z0-9+/=]+){3})?$")


def passwd(binary, path, user, password=None, *extra):
    """Runs "ferrymq passwd" with `password` as the one line on stdin."""
    return subprocess.run([str(binary), "passwd", *extra, str(path), user],
                          input=None if password is None else password + "\n",
                          capture_output=True, text=True, timeout=harness.DEFAULT_TIMEOUT)


def users_in(path):
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    for line in lines:
        assert LINE_RE.match(line), line
    return {LINE_RE.match(line)["user"]: line for line in lines}


@pytest.fixture
def password_file(ferrymq_bin, tmp_path):
    path = tmp_path / "passwd"
    for user, password in [("alice", "wonderland"), ("bob", "builder")]:
        r = passwd(ferrymq_bin, path, user, password)
        assert r.returncode == 0, r.stderr
    return path


def secured_broker(start_broker, password_file, extra=""):
    """A broker with the password file, listener 0 without anonymous access and listener 1
    (also loopback) with it."""
    closed_port, open_port = free_ports(2)
    config = f"""
authentication:
  password_file: "{password_file}"
listeners:
  - bind: "127.0.0.1:{closed_port}"
    allow_anonymous: false
  - bind: "127.0.0.1:{open_port}"
{extra}"""
    b = start_broker(config_text=config, listen=False, expect_listeners=2)
    b.closed_index = b.ports.index(closed_port)
    b.open_index = b.ports.index(open_port)
    return b


def test_passwd_round_trip(ferrymq_bin, tmp_path):
    """Create, add, change, delete; the file is 0600, one line per user in the documented
    format, never holding the password; the password never comes from argv."""
    path = tmp_path / "passwd"
    r = passwd(ferrymq_bin, path, "alice", "first-pass")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = users_in(path)["alice"]
    assert "first-pass" not in path.read_text()
    assert int(LINE_RE.match(first)["iterations"]) == 10000

    assert passwd(ferrymq_bin, path, "bob", "b").returncode == 0
    assert set(users_in(path)) == {"alice", "bob"}

    r = passwd(ferrymq_bin, path, "alice", "second-pass", "--iterations", "2000")
    assert r.returncode == 0 and "changed" in r.stdout, r
    changed = users_in(path)["alice"]
    assert changed != first and "$2000$" in changed
    assert set(users_in(path)) == {"alice", "bob"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    r = passwd(ferrymq_bin, path, "bob", None, "--delete")
    assert r.returncode == 0, r.stderr
    assert set(users_in(path)) == {"alice"}
    r = passwd(ferrymq_bin, path, "bob", None, "--delete")
    assert r.returncode == 1 and "no user 'bob'" in r.stderr
    # No temporary file stays behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_passwd_keeps_the_group_read_permission_of_the_file_it_replaces(ferrymq_bin, tmp_path):
    """The packaged service reads /etc/ferrymq/passwd as user ferrymq: an administrator makes
    it root:ferrymq 0640 once, and every later change keeps that, but never more."""
    import grp

    group = grp.getgrnam("nogroup").gr_gid if os.geteuid() == 0 else os.getgid()
    path = tmp_path / "passwd"
    assert passwd(ferrymq_bin, path, "alice", "a").returncode == 0
    os.chown(path, -1, group)
    os.chmod(path, 0o644)
    assert passwd(ferrymq_bin, path, "bob", "b").returncode == 0
    info = os.stat(path)
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o640, group)
    assert set(users_in(path)) == {"alice", "bob"}
    os.chmod(path, 0o600)
    assert passwd(ferrymq_bin, path, "bob", None, "--delete").returncode == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_passwd_takes_no_password_from_argv(ferrymq_bin, tmp_path):
    """A third argument is refused (it would show in ps and the shell history), and an
    empty stdin adds nothing."""
    path = tmp_path / "passwd"
    r = subprocess.run([str(ferrymq_bin), "passwd", str(path), "alice", "secret"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=harness.DEFAULT_TIMEOUT)
    assert r.returncode != 0
    assert not path.exists()
    r = subprocess.run([str(ferrymq_bin), "passwd", str(path), "alice"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=harness.DEFAULT_TIMEOUT)
    assert r.returncode == 1 and "no password" in r.stderr
    assert not path.exists()
    r = passwd(ferrymq_bin, path, "a:b", "x")
    assert r.returncode == 1 and not path.exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_right_password_accepted_wrong_refused_MQTT_3_1_4_2(start_broker, clients,
                                                             password_file, version):
    b = secured_broker(start_broker, password_file)
    ok = clients.raw(b, version, index=b.closed_index)
    assert ok.connect("c50-ok", username="alice", password=b"wonderland").reason == 0

    bad = 4 if version == V311 else Reason.BAD_USERNAME_OR_PASSWORD
    for i, (user, password) in enumerate([("alice", b"Wonderland"), ("mallory", b"wonderland"),
                                          ("alice", None), ("bob", b"wonderland")]):
        c = clients.raw(b, version, index=b.closed_index)
        c.send(connect_packet(f"c50-bad{i}", version, username=user, password=password))
        packets = c.expect_closed()
        assert [(p.type, p.reason) for p in packets] == [(CONNACK, bad)], (user, packets)
    # Wrong credentials are refused on a listener that allows anonymous clients too: a
    # client that names a user must be that user.
    c = clients.raw(b, version, index=b.open_index)
    c.send(connect_packet("c50-bad-open", version, username="alice", password=b"nope"))
    assert [(p.type, p.reason) for p in c.expect_closed()] == [(CONNACK, bad)]


@pytest.mark.parametrize("version", VERSIONS)
def test_no_username_refused_where_anonymous_is_not_allowed(start_broker, clients,
                                                            password_file, version):
    b = secured_broker(start_broker, password_file)
    c = clients.raw(b, version, index=b.closed_index)
    c.send(connect_packet("c50-anon", version))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [
        (CONNACK, 5 if version == V311 else Reason.NOT_AUTHORIZED)]
    anon = clients.raw(b, version, index=b.open_index)
    assert anon.connect("c50-anon-open").reason == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_with_username_and_password(start_broker, clients, password_file, version):
    b = secured_broker(start_broker, password_file)

    def attempt(user, password):
        c = clients.paho(b, f"c50-paho-{user}-{password}", version, connect=False)
        host, port = b.addresses[b.closed_index]
        c.broker = types.SimpleNamespace(host=host, port=port)  # paho uses .host and .port
        c.client.username_pw_set(user, password)
        return c

    good = attempt("bob", "builder")
    good.connect(expect_reason=0)
    assert good.subscribe("c50/t", 1) == [1]
    bad = attempt("bob", "wrong")
    bad.connect(expect_reason=4 if version == V311 else Reason.BAD_USERNAME_OR_PASSWORD)


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients missing")
@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_with_credentials(start_broker, password_file, protocol):
    b = secured_broker(start_broker, password_file)
    host, port = b.addresses[b.closed_index]

    def pub(*creds):
        return subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-V", protocol,
                               "-t", "c50/m", "-m", "x", "-q", "1", *creds],
                              capture_output=True, text=True, timeout=harness.DEFAULT_TIMEOUT)

    assert pub("-u", "alice", "-P", "wonderland").returncode == 0
    r = pub("-u", "alice", "-P", "nope")
    assert r.returncode != 0
    assert re.search(r"(?i)bad user ?name or password|not authori[sz]ed", r.stderr), r.stderr
    assert pub().returncode != 0


def test_password_file_feeds_scram(start_broker, clients, password_file):
    """A user written by "ferrymq passwd" also authenticates with SCRAM-SHA-256."""
    b = secured_broker(start_broker, password_file)
    c = clients.raw(b, V5, index=b.closed_index)
    assert connect_with_scram(c, ScramClient("alice", "wonderland")).reason == 0
    bad = clients.raw(b, V5, index=b.closed_index)
    ack = connect_with_scram(bad, ScramClient("alice", "builder"))
    assert ack.reason == Reason.BAD_USERNAME_OR_PASSWORD


def test_broken_password_file_stops_the_start(start_broker, run_ferrymq, tmp_path,
                                              password_file):
    """A damaged line is reported as FILE:LINE by check-config and by the broker, which
    does not start."""
    lines = password_file.read_text().splitlines()
    lines.insert(2, "carol:$pbkdf2-sha512$100$AAAA$AAAA")
    password_file.write_text("\n".join(lines) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(f'authentication:\n  password_file: "{password_file}"\n')
    r = run_ferrymq("check-config", config)
    assert r.returncode == 1
    assert f"{password_file}:3: iterations must be" in r.stderr, r.stderr
    b = start_broker("-c", config, wait=False)
    assert b.wait_for_exit() == 1
    assert f"{password_file}:3:" in b.log_text()


def test_non_loopback_listener_refuses_anonymous_by_default(start_broker, clients, tmp_path):
    """A listener off loopback that does not set allow_anonymous refuses anonymous clients
    (and, with no password file, named ones): the secure default of the issue."""
    b = start_broker("--listen", "0.0.0.0:0")
    c = clients.raw(b, V311)
    c.send(connect_packet("c50-default", V311))
    assert [(p.type, p.reason) for p in c.expect_closed()] == [(CONNACK, 5)]
    assert "refuses anonymous clients and no password file" in b.log_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_address_banned_after_repeated_failures(start_broker, clients, password_file, version):
    """abuse.ban_after_failures: 3 failed logins within the window ban the address, so even
    the right password is then refused (the connection closes without CONNACK); each
    failure is counted and logged (rate-limited) with the address."""
    b = secured_broker(start_broker, password_file,
                       extra="abuse:\n  ban_after_failures: 3\n  window: 60\n  ban_time: 300\n")
    bad = 4 if version == V311 else Reason.BAD_USERNAME_OR_PASSWORD
    for i in range(3):
        c = clients.raw(b, version, index=b.closed_index)
        c.send(connect_packet(f"c50-ban{i}", version, username="alice", password=b"guess"))
        assert [(p.type, p.reason) for p in c.expect_closed()] == [(CONNACK, bad)]
    b.wait_for_log(r"127\.0\.0\.1 banned for 300 s after 3 failed authentications")
    c = clients.raw(b, version, index=b.closed_index)
    c.send(connect_packet("c50-ban-ok", version, username="alice", password=b"wonderland"))
    assert c.expect_closed() == [], "a banned address got an answer"
    assert "127.0.0.1: 1 failed authentication" in b.log_text()
