# SPDX-License-Identifier: Apache-2.0
"""09 session: session state that outlives a connection (spec 3.1.2.4, 4.1): a persistent
session (3.1.1 Clean Session 0, 5.0 Session Expiry Interval > 0) keeps its subscriptions
and queues QoS 1 and 2 messages while the client is away; QoS 0 messages are not queued.
5.0 sessions end when their expiry interval has passed."""
import time

import pytest

from mqtt_helpers import (DISCONNECT, PUBLISH, V311, V5, VERSIONS, Prop, Reason, flush,
                          persistent)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_queues_qos1_and_qos2_MQTT_3_1_2_5(broker, clients, version):
    """[MQTT-3.1.2-4], [MQTT-3.1.2-5], [MQTT-3.2.2-2] A client that comes back to its
    persistent session gets Session Present 1, its subscriptions still deliver, and the
    QoS 1 and 2 messages published while it was away arrive, in order, at their QoS. QoS 0
    messages are not queued for an absent client (spec 3.1.2.4: "optionally")."""
    sub = clients.connected(broker, "c09-away", version, **persistent(version))
    sub.subscribe("c09/away/#", 2)
    sub.disconnect()

    pub = clients.connected(broker, "c09-pub", version)
    for i, qos in enumerate([1, 0, 2, 1, 2, 0]):
        pub.publish(f"c09/away/{i}", f"m{i}-q{qos}", qos=qos)
    flush(pub)

    sub = clients.raw(broker, version)
    assert sub.connect("c09-away", **persistent(version)).session_present is True
    got = [(p.topic, p.payload, p.qos) for p in sub.barrier()]
    assert got == [("c09/away/0", b"m0-q1", 1), ("c09/away/2", b"m2-q2", 2),
                   ("c09/away/3", b"m3-q1", 1), ("c09/away/4", b"m4-q2", 2)]

    pub.publish("c09/away/live", b"live", qos=1)
    assert sub.receive().payload == b"live"


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_session_is_discarded_MQTT_3_1_2_6(broker, clients, version):
    """[MQTT-3.1.2-6] (5.0: [MQTT-3.1.2-4] with Session Expiry 0 [MQTT-3.1.2-23]) A session
    started clean (3.1.1) or without a Session Expiry Interval (5.0) ends with its
    connection: a later Clean Start 0 finds none (Session Present 0 [MQTT-3.2.2-3]) and the
    old subscription delivers nothing."""
    sub = clients.connected(broker, "c09-gone", version, clean=version == V311)
    sub.subscribe("c09/gone", 1)
    sub.disconnect()

    again = clients.raw(broker, version)
    assert again.connect("c09-gone", **persistent(version)).session_present is False
    pub = clients.connected(broker, "c09-pub", version)
    pub.publish("c09/gone", b"nobody", qos=1)
    flush(pub)
    assert again.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_start_discards_an_existing_session_MQTT_3_1_2_4(broker, clients, version):
    """[MQTT-3.1.2-4] (5.0 [MQTT-3.1.2-4]) Clean Start 1 discards a stored session, with its
    queued messages: Session Present 0, nothing delivered."""
    sub = clients.connected(broker, "c09-fresh", version, **persistent(version))
    sub.subscribe("c09/fresh", 1)
    sub.disconnect()
    pub = clients.connected(broker, "c09-pub", version)
    pub.publish("c09/fresh", b"queued", qos=1)

    again = clients.raw(broker, version)
    assert again.connect("c09-fresh", **persistent(version, clean=True)).session_present \
        is False
    assert again.barrier() == []
    pub.publish("c09/fresh", b"after", qos=1)
    flush(pub)
    assert again.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_session_survives_a_dropped_connection(broker, clients, version):
    """A persistent session also survives a connection that drops without DISCONNECT."""
    sub = clients.connected(broker, "c09-drop", version, **persistent(version))
    sub.subscribe("c09/drop", 1)
    sub.drop()
    pub = clients.connected(broker, "c09-pub", version)
    pub.publish("c09/drop", b"while dropped", qos=1)
    sub = clients.raw(broker, version)
    assert sub.connect("c09-drop", **persistent(version)).session_present is True
    assert [p.payload for p in sub.barrier()] == [b"while dropped"]


def test_v5_session_expiry_MQTT_3_1_2_23(start_broker, clients):
    """[MQTT-3.1.2-23] 5.0 Session Expiry Interval 2 s: the session is kept for 2 s after
    the connection closes (reconnecting within that finds it, Session Present 1), then
    deleted (the broker logs it; the wait is bounded), after which Clean Start 0 finds no
    session and the old subscription delivers nothing."""
    broker = start_broker("--log-level", "debug")
    sub = clients.connected(broker, "c09-expiring", V5, clean=False, session_expiry=2)
    sub.subscribe("c09/exp", 1)
    sub.disconnect()
    sub = clients.raw(broker, V5)
    assert sub.connect("c09-expiring", clean=False, session_expiry=2).session_present is True
    mark = broker.log_mark()
    sub.disconnect()
    closed = time.monotonic()

    broker.wait_for_log(r"session c09-expiring expired", timeout=5, since=mark)
    elapsed = time.monotonic() - closed
    assert elapsed >= 1.8, f"session expired {elapsed:.2f}s after the close, not 2 s"
    sub = clients.raw(broker, V5)
    assert sub.connect("c09-expiring", clean=False, session_expiry=2).session_present is False
    pub = clients.connected(broker, "c09-pub", V5)
    pub.publish("c09/exp", b"too late", qos=1)
    flush(pub)
    assert sub.barrier() == []


def test_v5_disconnect_can_end_the_session(broker, clients):
    """5.0 spec 3.14.2.2.2: a DISCONNECT may lower the Session Expiry Interval to 0, which
    ends the session with the connection."""
    sub = clients.connected(broker, "c09-bye", V5, clean=False, session_expiry=300)
    sub.subscribe("c09/bye", 1)
    sub.disconnect(props={Prop.SESSION_EXPIRY_INTERVAL: 0})
    again = clients.raw(broker, V5)
    assert again.connect("c09-bye", clean=False, session_expiry=300).session_present is False


def test_v5_disconnect_cannot_extend_a_zero_expiry_spec_3_14_2_2_2(broker, clients):
    """5.0 spec 3.14.2.2.2: a client that connected with Session Expiry 0 must not set a non-zero
    one in DISCONNECT: that is a Protocol Error (DISCONNECT 0x82 from the server, which
    carries no Session Expiry Interval of its own [MQTT-3.14.2-2]), and the session still
    ends."""
    c = clients.connected(broker, "c09-extend", V5, clean=False)
    packets = c.disconnect(props={Prop.SESSION_EXPIRY_INTERVAL: 60})
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, Reason.PROTOCOL_ERROR)]
    assert Prop.SESSION_EXPIRY_INTERVAL not in packets[0].properties
    again = clients.raw(broker, V5)
    assert again.connect("c09-extend", clean=False, session_expiry=60).session_present is False


@pytest.mark.parametrize("version", VERSIONS)
def test_queue_limit_drops_oldest(start_broker, clients, version):
    """limits.max_queued_messages 3: a session away while 5 QoS 1 messages arrive keeps the
    newest 3, in order (the documented drop-oldest policy)."""
    broker = start_broker(config_text="limits:\n  max_queued_messages: 3\n")
    sub = clients.connected(broker, "c09-full", version, **persistent(version))
    sub.subscribe("c09/full", 1)
    sub.disconnect()
    pub = clients.connected(broker, "c09-pub", version)
    for i in range(5):
        pub.publish("c09/full", f"m{i}", qos=1)
    sub = clients.raw(broker, version)
    assert sub.connect("c09-full", **persistent(version)).session_present is True
    assert [p.payload for p in sub.barrier()] == [b"m2", b"m3", b"m4"]


@pytest.mark.parametrize("version", VERSIONS)
def test_inflight_window_and_queue_deliver_everything_in_order(start_broker, clients,
                                                               version):
    """limits.max_inflight 2: 10 QoS 1 messages queued for an absent client arrive in
    order over a window of 2 unacknowledged messages: the broker sends 2, then one more
    per PUBACK [MQTT-4.9.0] (5.0 Receive Maximum semantics)."""
    broker = start_broker(config_text="limits:\n  max_inflight: 2\n")
    sub = clients.connected(broker, "c09-window", version, **persistent(version))
    sub.subscribe("c09/win", 1)
    sub.disconnect()
    pub = clients.connected(broker, "c09-pub", version)
    for i in range(10):
        pub.publish("c09/win", f"m{i}", qos=1)

    sub = clients.raw(broker, version)
    sub.connect("c09-window", **persistent(version))
    unacked = sub.barrier(ack=False)
    assert [p.payload for p in unacked] == [b"m0", b"m1"]
    got = [p.payload for p in unacked]
    for p in unacked:
        sub.ack(p)
    while len(got) < 10:
        p = sub.receive()
        assert p.type == PUBLISH
        got.append(p.payload)
    assert got == [f"m{i}".encode() for i in range(10)]
    assert sub.barrier() == []



def test_v5_clean_start_with_expiry_persists_MQTT_3_1_2_23(broker, clients):
    """5.0 Clean Start 1 with a Session Expiry Interval starts a new session that does
    outlive the connection [MQTT-3.1.2-23]: the next Clean Start 0 resumes it."""
    sub = clients.connected(broker, "c09-newpersist", V5, clean=True, session_expiry=300)
    sub.subscribe("c09/np", 1)
    sub.disconnect()
    pub = clients.connected(broker, "c09-pub", V5)
    pub.publish("c09/np", b"kept", qos=1)
    sub = clients.raw(broker, V5)
    assert sub.connect("c09-newpersist", clean=False, session_expiry=300).session_present
    assert [p.payload for p in sub.barrier()] == [b"kept"]
