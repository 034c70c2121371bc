# SPDX-License-Identifier: Apache-2.0
"""51 access control: `acl:` rules by user, client id and %u/%c pattern, first match wins,
deny by default. A refused PUBLISH gets PUBACK/PUBREC 0x87 in 5.0 and is acknowledged but
dropped in 3.1.1 [MQTT-3.3.5-2]; a refused subscription gets SUBACK 0x87 in 5.0 and 0x80 in
3.1.1 [MQTT-3.9.3-2]; a message (retained ones included) reaches only clients that may read
its topic."""
import subprocess

import pytest

import ferrymq_harness as harness
from mqtt_helpers import (CONNACK, PUBACK, PUBCOMP, PUBREC, PUBREL, V311, V5, VERSIONS, Reason,
                          Will, ack_packet, connect_packet, flush)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

ACL = """
acl:
  - username: admin            # admin may do anything
    topic: "#"
  - topic: "secret/#"          # nobody else touches secret/
    action: deny
  - topic: "users/%u/#"        # each user owns users/<name>/...
  - topic: "devices/%c/data"   # a device publishes its own data ...
    access: publish
  - topic: "devices/+/data"    # ... and anyone may read every device's data
    access: subscribe
  - topic: "public/#"
  - topic: "#"                 # anything else may be read, never written
    access: subscribe
"""


@pytest.fixture
def acl_broker(start_broker, ferrymq_bin, tmp_path):
    path = tmp_path / "passwd"
    for user in ("admin", "alice", "bob"):
        r = subprocess.run([str(ferrymq_bin), "passwd", "--iterations", "1000", str(path), user],
                           input=f"{user}-pw\n", capture_output=True, text=True,
                           timeout=harness.DEFAULT_TIMEOUT)
        assert r.returncode == 0, r.stderr
    return start_broker(config_text=f'authentication:\n  password_file: "{path}"\n{ACL}')


def login(clients, broker, version, user, client_id=None):
    c = clients.raw(broker, version)
    if user is None:
        c.connect(client_id or "c51-anon")
    else:
        c.connect(client_id or f"c51-{user}", username=user, password=f"{user}-pw".encode())
    return c


def pub(c, topic, payload, qos=1, retain=False):
    """Publishes at QoS 1 or 2 and returns the PUBACK or PUBREC; a QoS 2 flow the broker
    accepted is completed with PUBREL/PUBCOMP."""
    packet_id = c.publish(topic, payload, qos=qos, retain=retain, complete=False)
    ack = c.expect(PUBACK if qos == 1 else PUBREC, packet_id)
    if qos == 2 and (ack.reason or 0) < 0x80:
        c.send(ack_packet(PUBREL, packet_id, c.version))
        c.expect(PUBCOMP, packet_id)
    return ack


def accepted(ack):
    return (ack.reason or 0) == 0


def refused_as(version):
    """What a refused PUBLISH's ack says: 0x87 in 5.0; 3.1.1 acknowledges it normally."""
    return Reason.NOT_AUTHORIZED if version == V5 else 0


def denied_reason(version):
    return Reason.NOT_AUTHORIZED if version == V5 else 0x80


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_allowed_and_denied(acl_broker, clients, version):
    reader = login(clients, acl_broker, V5, "admin", "c51-reader")
    reader.subscribe("#", qos=1)
    alice = login(clients, acl_broker, version, "alice")

    # Allowed: users/alice/... (%u) and public/...
    for topic in ("users/alice/x", "public/x"):
        ack = pub(alice, topic, b"ok", qos=1)
        assert ack.type == PUBACK and accepted(ack), ack
        assert reader.receive().topic == topic

    # Denied: another user's tree, secret/, a topic only readable.
    for qos in (1, 2):
        for topic in ("users/bob/x", "secret/x", "other/x"):
            ack = pub(alice, topic, b"no", qos=qos)
            assert ack.type == (PUBACK if qos == 1 else PUBREC), ack
            assert (ack.reason or 0) == refused_as(version), (topic, ack)
    alice.publish("secret/qos0", b"no", qos=0)
    flush(alice)
    assert reader.barrier() == [], "a denied message was routed"


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_allowed_and_denied_MQTT_3_9_3(acl_broker, clients, version):
    """Granted where the first covering rule allows ('#' by the last rule), refused by the
    deny rule on secret/ and by default ($SYS/# is covered by no rule: '#' does not reach
    '$' topics [MQTT-4.7.2-1])."""
    bob = login(clients, acl_broker, version, "bob")
    ack = bob.subscribe([("users/bob/#", 1), ("$SYS/#", 1), ("secret/#", 0),
                         ("devices/+/data", 1), ("public/+", 2), ("#", 0), ("secret/a/+", 1)])
    denied = denied_reason(version)
    assert ack.reasons == [1, denied, denied, 1, 2, 0, denied], ack


@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_pattern(acl_broker, clients, version):
    dev = login(clients, acl_broker, version, None, client_id="dev7")
    reader = login(clients, acl_broker, version, None, client_id="c51-dev-reader")
    assert reader.subscribe("devices/+/data", qos=1).reasons == [1]
    assert accepted(pub(dev, "devices/dev7/data", b"21.5"))
    assert reader.receive().payload == b"21.5"
    assert (pub(dev, "devices/dev8/data", b"forged").reason or 0) == refused_as(version)
    assert reader.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_unchecked_username_counts_as_anonymous(start_broker, clients, version):
    """Without a password file nobody checks a username, so rules for that user (and %u)
    do not apply to a client that merely claims it."""
    b = start_broker(config_text=ACL)
    c = clients.raw(b, version)
    c.connect("c51-claim", username="admin", password=b"whatever")
    assert c.subscribe("secret/#").reasons == [denied_reason(version)]
    assert (pub(c, "users/admin/x", b"x").reason or 0) == refused_as(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_needs_read_access(acl_broker, clients, version):
    """A subscription to '#' is granted, but retained messages (and live ones) on secret/
    are not delivered to a client whose rules deny reading them."""
    admin = login(clients, acl_broker, V5, "admin")
    admin.publish("secret/plans", b"s", qos=1, retain=True)
    admin.publish("public/news", b"p", qos=1, retain=True)
    alice = login(clients, acl_broker, version, "alice")
    assert alice.subscribe("#", qos=1).reasons == [1]
    got = alice.barrier()
    assert [(p.topic, p.payload) for p in got] == [("public/news", b"p")], got
    admin.publish("secret/live", b"s2", qos=1)
    admin.publish("public/live", b"p2", qos=1)
    flush(admin)
    assert [p.topic for p in alice.barrier()] == ["public/live"]
    # The admin, allowed everything, gets the retained secret.
    other = login(clients, acl_broker, version, "admin", "c51-admin2")
    other.subscribe("secret/#", qos=1)
    assert [p.topic for p in other.barrier()] == ["secret/plans"]


@pytest.mark.parametrize("version", VERSIONS)
def test_will_topic_needs_publish_access(acl_broker, clients, version):
    """A CONNECT whose will the client could not publish is refused (5 / 0x87)."""
    c = clients.raw(acl_broker, version)
    c.send(connect_packet("c51-will", version, username="alice", password=b"alice-pw",
                          will=Will("secret/will", b"w")))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [
        (CONNACK, 5 if version == V311 else Reason.NOT_AUTHORIZED)]
    ok = clients.raw(acl_broker, version)
    ok.connect("c51-will-ok", username="alice", password=b"alice-pw",
               will=Will("users/alice/status", b"gone"))
