# SPDX-License-Identifier: Apache-2.0
"""52 TLS (mbedTLS) on listeners and on bridge uplinks, with certificates made by openssl
(tlscerts.py) and real peers: mosquitto_pub/sub with --cafile/--cert/--key, paho, Python's
ssl module, Mosquitto's TLS listener with mutual TLS as a bridge's upstream, and
openssl s_server to see the SNI and ALPN a bridge sends."""
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from mqtt_helpers import V311, V5, Reason, free_ports
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)
from test_40_bridge import mosquitto  # noqa: F401 (fixture, used by name)
from test_40_bridge import wait_state
from tlscerts import Certificates, TlsEndpoint, client_context

TOOL_TIMEOUT = 15


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certificates(tmp_path_factory.mktemp("certs"))


def tls_broker(start_broker, pair, tls="", extra="", wait=True):
    """A broker with a plain listener (index 0) and a TLS listener (index 1) presenting
    `pair`; `tls` adds lines to the listener's tls block (6 spaces of indentation)."""
    plain, secure = free_ports(2)
    config = f"""
listeners:
  - bind: "127.0.0.1:{plain}"
  - bind: "127.0.0.1:{secure}"
    tls:
      cert_file: "{pair.cert}"
      key_file: "{pair.key}"
{tls}{extra}"""
    return start_broker(config_text=config, listen=False, expect_listeners=2, wait=wait)


def mosquitto_tool(tool, port, *args, ca=None, pair=None, version=V5):
    argv = [tool, "-h", "localhost", "-p", str(port), "-V", "mqttv5" if version == V5 else
            "mqttv311", "-W" if tool == "mosquitto_sub" else "--quiet", *(["10"] if tool ==
            "mosquitto_sub" else []), *args]
    if ca is not None:
        argv += ["--cafile", str(ca)]
    if pair is not None:
        argv += ["--cert", str(pair.cert), "--key", str(pair.key)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)


def peer_certificate(broker, index, ca):
    """The DER certificate listener `index` presents to a new connection."""
    with socket.create_connection(broker.addresses[index], timeout=10) as raw:
        with client_context(ca).wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def der(pair):
    return ssl.PEM_cert_to_DER_cert(pair.cert.read_text())


# --- listeners ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_mosquitto_clients_publish_and_subscribe_over_tls(start_broker, certs, version):
    b = tls_broker(start_broker, certs.server)
    port = b.ports[1]
    pub = mosquitto_tool("mosquitto_pub", port, "-t", "tls/one", "-m", "over tls", "-q", "1",
                         "-r", ca=certs.ca.cert, version=version)
    assert pub.returncode == 0, pub.stderr
    sub = mosquitto_tool("mosquitto_sub", port, "-t", "tls/#", "-C", "1", "-v", ca=certs.ca.cert,
                         version=version)
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == "tls/one over tls"
    # The same retained message is there for a plain client: one broker behind both.
    plain = mosquitto_tool("mosquitto_sub", b.ports[0], "-t", "tls/#", "-C", "1")
    assert plain.stdout.strip() == "over tls"


def test_client_that_does_not_trust_the_server_refuses_it(start_broker, certs):
    b = tls_broker(start_broker, certs.server)
    r = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.other_ca.cert)
    assert r.returncode != 0
    b.wait_for_log(r"TLS handshake failed")
    # The broker keeps serving.
    ok = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.ca.cert)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("client,log", [
    ("none", r"TLS handshake failed: .*no certificate"),
    ("client_expired", r"TLS handshake failed: client certificate refused: .*expired"),
    ("client_other_ca", r"TLS handshake failed: client certificate refused: .*not correctly "
                        r"signed"),
])
def test_required_client_certificate_refuses_a_missing_or_bad_one(start_broker, certs, client,
                                                                    log):
    b = tls_broker(start_broker, certs.server,
                   tls=f'      ca_file: "{certs.ca.cert}"\n      client_certificates: required\n')
    pair = None if client == "none" else getattr(certs, client)
    r = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.ca.cert,
                       pair=pair)
    assert r.returncode != 0
    b.wait_for_log(log)
    ok = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.ca.cert,
                        pair=certs.client)
    assert ok.returncode == 0, ok.stderr


def test_optional_client_certificate_admits_none_but_not_a_bad_one(start_broker, certs):
    b = tls_broker(start_broker, certs.server,
                   tls=f'      ca_file: "{certs.ca.cert}"\n      client_certificates: optional\n')
    none = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.ca.cert)
    assert none.returncode == 0, none.stderr
    bad = mosquitto_tool("mosquitto_pub", b.ports[1], "-t", "t", "-m", "x", ca=certs.ca.cert,
                         pair=certs.client_expired)
    assert bad.returncode != 0
    b.wait_for_log(r"client certificate refused: .*expired")


@pytest.mark.parametrize("source,user", [("cn", "device-1"), ("san", "device-1.example")])
def test_certificate_identity_is_the_username_for_acls(start_broker, certs, clients, source,
                                                       user):
    b = tls_broker(start_broker, certs.server,
                   tls=f'      ca_file: "{certs.ca.cert}"\n      client_certificates: optional\n'
                       f'      identity_as_username: {source}\n',
                   extra='acl:\n  - topic: "devices/%u/#"\n')
    endpoint = TlsEndpoint(b, 1, client_context(certs.ca.cert, certs.client))
    c = clients.raw(endpoint, V5)
    # The username CONNECT carries does not count: the certificate names the user.
    ack = c.connect("cert-user", username="someone-else", password=b"ignored")
    assert ack.reason == Reason.SUCCESS
    own = c.subscribe(f"devices/{user}/#", qos=1)
    other = c.subscribe("devices/other/#", qos=1)
    assert own.reasons == [1]
    assert other.reasons == [Reason.NOT_AUTHORIZED]
    # Without a certificate there is no user: Not authorized [MQTT-3.2.2-8 / 0x87].
    anonymous = clients.raw(TlsEndpoint(b, 1, client_context(certs.ca.cert)), V5)
    assert anonymous.connect("no-cert", expect_reason=None).reason == Reason.NOT_AUTHORIZED


def test_encrypted_key_is_read_with_its_password_file(start_broker, certs, tmp_path):
    b = tls_broker(start_broker, certs.server_encrypted,
                   tls=f'      key_password_file: "{certs.key_password_file}"\n')
    assert peer_certificate(b, 1, certs.ca.cert) == der(certs.server)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    failed = tls_broker(start_broker, certs.server_encrypted,
                        tls=f'      key_password_file: "{wrong}"\n', wait=False)
    assert failed.wait_for_exit() != 0
    assert re.search(r"TLS on 127\.0\.0\.1:\d+ \(line \d+\): key_file .*server_encrypted\.key",
                     failed.log_text())


def test_sighup_reloads_the_certificate_without_dropping_clients(start_broker, certs, clients,
                                                                 tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(certs.server.cert, cert)
    shutil.copy(certs.server.key, key)
    b = tls_broker(start_broker, type(certs.server)(cert, key))
    tls = dict(ca_certs=str(certs.ca.cert))
    endpoint = TlsEndpoint(b, 1, client_context(certs.ca.cert))
    old = clients.paho(endpoint, "old-client", V5, tls=tls)
    old.subscribe("reload/#", qos=1)
    assert peer_certificate(b, 1, certs.ca.cert) == der(certs.server)

    shutil.copy(certs.server2.cert, cert)
    shutil.copy(certs.server2.key, key)
    mark = b.log_mark()
    b.send_signal(signal.SIGHUP)
    b.wait_for_log(r"TLS on 127\.0\.0\.1:\d+: certificate CN=localhost", since=mark)
    assert peer_certificate(b, 1, certs.ca.cert) == der(certs.server2)
    # The client connected before the reload is still connected and served.
    new = clients.paho(endpoint, "new-client", V5, tls=tls)
    new.publish("reload/x", b"after reload", qos=1)
    assert old.expect_message().payload == b"after reload"

    # A file that cannot be used refuses the reload: the running certificate stays.
    cert.write_text("not a certificate\n")
    mark = b.log_mark()
    b.send_signal(signal.SIGHUP)
    b.wait_for_log(r"reload refused: TLS on 127\.0\.0\.1:\d+ cannot be used; the running "
                   r"configuration stays", since=mark)
    assert peer_certificate(b, 1, certs.ca.cert) == der(certs.server2)


def test_tls_below_1_2_is_refused(start_broker, certs):
    b = tls_broker(start_broker, certs.server)
    old = client_context(certs.ca.cert)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(b.addresses[1], timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")
    # The broker saw the TLS 1.1 hello and refused it (the client did not give up alone).
    b.wait_for_log(r"TLS handshake failed: SSL - Handshake protocol not within min/max")
    with socket.create_connection(b.addresses[1], timeout=10) as raw:
        with client_context(certs.ca.cert).wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"


def test_configured_cipher_suite_is_the_one_negotiated(start_broker, certs):
    b = tls_broker(start_broker, certs.server,
                   tls="      ciphers: [TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256]\n")
    with socket.create_connection(b.addresses[1], timeout=10) as raw:
        with client_context(certs.ca.cert).wrap_socket(raw, server_hostname="localhost") as s:
            assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_silent_connection_is_closed_after_the_handshake_timeout(start_broker, certs):
    b = tls_broker(start_broker, certs.server, tls="      handshake_timeout: 1\n")
    with socket.create_connection(b.addresses[1], timeout=10) as s:
        start = time.monotonic()
        assert s.recv(1) == b""  # closed by the broker, not by our timeout
        assert time.monotonic() - start < 5
    b.wait_for_log(r"no TLS handshake in 1 s")


def test_plain_mqtt_on_a_tls_port_is_closed_and_others_unaffected(start_broker, certs, clients):
    b = tls_broker(start_broker, certs.server)
    good = clients.raw(TlsEndpoint(b, 1, client_context(certs.ca.cert)), V5)
    assert good.connect("tls-good").reason == Reason.SUCCESS
    good.subscribe("still/#", qos=1)
    bad = clients.raw(b, V311, index=1)
    bad.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # a plaintext CONNECT
    bad.expect_closed()
    b.wait_for_log(r"TLS handshake failed")
    good.publish("still/here", b"yes", qos=1)
    assert good.receive().payload == b"yes"


@pytest.mark.parametrize("tls,error", [
    ('      cert_file: "/nonexistent/server.crt"\n      key_file: "{key}"\n',
     r":\d+:\d+: listeners\[0\]\.tls\.cert_file '/nonexistent/server\.crt': cannot read"),
    ('      cert_file: "{cert}"\n',
     r":\d+:\d+: listeners\[0\]\.tls needs cert_file and key_file"),
    ('      cert_file: "{cert}"\n      key_file: "{key}"\n      identity_as_username: cn\n',
     r"identity_as_username needs client_certificates optional or required"),
    ('      cert_file: "{cert}"\n      key_file: "{key}"\n      ciphers: [TLS-NOT-A-SUITE]\n',
     r"unknown cipher suite 'TLS-NOT-A-SUITE'"),
])
def test_check_config_names_the_line_of_a_tls_mistake(run_ferrymq, tmp_path, certs, tls, error):
    path = tmp_path / "tls.yaml"
    path.write_text('listeners:\n  - bind: "127.0.0.1:8883"\n    tls:\n' +
                    tls.format(cert=certs.server.cert, key=certs.server.key))
    r = run_ferrymq("check-config", str(path))
    assert r.returncode != 0
    assert re.search(error, r.stderr), r.stderr


# --- bridges ------------------------------------------------------------------------------

def tls_mosquitto(mosquitto, certs, pair, require_certificate=True):  # noqa: F811
    extra = (f"cafile {certs.ca.cert}\ncertfile {pair.cert}\nkeyfile {pair.key}\n")
    if require_certificate:
        extra += "require_certificate true\nuse_identity_as_username true\n"
    return mosquitto(extra_config=extra)


def tls_bridge_config(port, tls, protocol="5"):
    return f"""
bridges:
  - name: tls52
    address: "127.0.0.1:{port}"
    protocol: "{protocol}"
    backoff: {{min: 100, max: 500}}
    tls:
{tls}    forward:
      - local: "f52/#"
        remote: "up52/{{#}}"
    subscribe:
      - remote: "down52/#"
        local: "local52/{{#}}"
"""


def client_tls(certs, ca=None):
    return (f'      ca_file: "{ca or certs.ca.cert}"\n      cert_file: "{certs.client.cert}"\n'
            f'      key_file: "{certs.client.key}"\n      server_name: localhost\n')


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_bridge_over_mutual_tls_to_mosquitto(start_broker, clients, mosquitto,  # noqa: F811
                                             certs, protocol):
    m = tls_mosquitto(mosquitto, certs, certs.server)
    b = start_broker(config_text=tls_bridge_config(m.port, client_tls(certs), protocol))
    wait_state(clients, b, "tls52", "online")
    b.wait_for_log(r"bridge tls52: TLS to 127\.0\.0\.1:\d+: TLSv1\.2 ")
    up = clients.raw(TlsEndpoint(m, 0, client_context(certs.ca.cert, certs.client)), V5)
    up.connect("upstream-watcher")
    up.subscribe("up52/#", qos=1)
    local = clients.connected(b, "local-52", V5)
    local.subscribe("local52/#", qos=1)
    local.publish("f52/a", b"to the cloud", qos=1)
    got = up.receive()
    assert (got.topic, got.payload) == ("up52/a", b"to the cloud")
    up.publish("down52/b", b"from the cloud", qos=1)
    got = local.receive()
    assert (got.topic, got.payload) == ("local52/b", b"from the cloud")
    # Mosquitto took the bridge's client certificate as its identity.
    assert "u'device-1'" in (m.workdir / "mosquitto.log").read_text()


@pytest.mark.parametrize("server,ca,tls_extra,log", [
    ("server_other_ca", None, "", r"server certificate refused: .*not correctly signed"),
    ("server_expired", None, "", r"server certificate refused: .*validity has expired"),
    ("server_wrong_name", None, "", r"server certificate refused: .*Common Name \(CN\) does not "
                                    r"match"),
    # No ca_file: the system's CA store, which does not know the test CA.
    ("server", "system", "", r"server certificate refused: .*not correctly signed"),
], ids=["wrong-ca", "expired", "wrong-hostname", "system-store"])
def test_bridge_refuses_a_bad_server_certificate_with_a_clear_log_line(
        start_broker, clients, mosquitto, certs, server, ca, tls_extra, log):  # noqa: F811
    m = tls_mosquitto(mosquitto, certs, getattr(certs, server))
    tls = client_tls(certs)
    if ca == "system":
        tls = "".join(line + "\n" for line in tls.splitlines() if "ca_file" not in line)
    b = start_broker(config_text=tls_bridge_config(m.port, tls + tls_extra))
    b.wait_for_log(r"warn .*bridge tls52: TLS to 127\.0\.0\.1:\d+ \(localhost\): " + log)
    state = wait_state(clients, b, "tls52", "backoff")
    assert "certificate refused" in state


def test_bridge_without_hostname_check_still_checks_the_ca(start_broker, clients, mosquitto,
                                                          certs):  # noqa: F811
    m = tls_mosquitto(mosquitto, certs, certs.server_wrong_name)
    b = start_broker(config_text=tls_bridge_config(
        m.port, client_tls(certs) + "      verify_hostname: false\n"))
    wait_state(clients, b, "tls52", "online")
    m2 = tls_mosquitto(mosquitto, certs, certs.server_other_ca)
    b2 = start_broker(config_text=tls_bridge_config(
        m2.port, client_tls(certs) + "      verify_hostname: false\n"))
    b2.wait_for_log(r"server certificate refused: .*not correctly signed")


def test_insecure_bridge_connects_to_anything_and_warns_each_time(start_broker, clients,
                                                                  mosquitto, certs):  # noqa: F811
    m = tls_mosquitto(mosquitto, certs, certs.server_other_ca)
    b = start_broker(config_text=tls_bridge_config(
        m.port, client_tls(certs) + "      insecure: true\n"))
    wait_state(clients, b, "tls52", "online")
    b.wait_for_log(r"warn .*bridge tls52: TLS to 127\.0\.0\.1:\d+ WITHOUT certificate "
                   r"verification \(insecure: true\)")


def test_bridge_sends_sni_and_alpn(start_broker, certs, tmp_path):
    port = free_ports(1)[0]
    out = open(tmp_path / "s_server.out", "w")
    # s_server reads stdin; a pipe that stays open keeps it serving.
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1", "-cert",
         str(certs.server.cert), "-key", str(certs.server.key), "-alpn", "x-amzn-mqtt-ca",
         "-tlsextdebug"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while "ACCEPT" not in (tmp_path / "s_server.out").read_text(errors="replace"):
            assert time.monotonic() < deadline, "s_server did not start"
            time.sleep(0.02)
        b = start_broker(config_text=tls_bridge_config(
            port, client_tls(certs) + "      alpn: [x-amzn-mqtt-ca]\n"))
        b.wait_for_log(r"bridge tls52: TLS to 127\.0\.0\.1:\d+: TLSv1\.2 \S+ ALPN x-amzn-mqtt-ca")
        deadline = time.monotonic() + 10
        while "ALPN protocols selected" not in (tmp_path / "s_server.out").read_text(errors="replace"):
            assert time.monotonic() < deadline, "s_server saw no ALPN"
            time.sleep(0.02)
        text = (tmp_path / "s_server.out").read_text(errors="replace")
        assert "ALPN protocols selected: x-amzn-mqtt-ca" in text
        sni = text[text.index('"server name"'):].splitlines()[1]
        assert "localhost" in sni
    finally:
        server.kill()
        server.wait(10)
        out.close()
