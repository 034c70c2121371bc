# SPDX-License-Identifier: Apache-2.0
"""04 takeover: a second connection with a client id already connected takes the session
over [MQTT-3.1.4-3]: the older connection is closed (5.0: after DISCONNECT 0x8E), and the
session is handed over (Clean Start 0) or discarded (Clean Start 1)."""
import pytest

from mqtt_helpers import DISCONNECT, PUBLISH, V311, V5, VERSIONS, Reason, persistent
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

VERSION_PAIRS = [
    pytest.param(V311, V311, id="v311-by-v311"),
    pytest.param(V5, V5, id="v5-by-v5"),
    pytest.param(V311, V5, id="v311-by-v5"),
    pytest.param(V5, V311, id="v5-by-v311"),
]


@pytest.mark.parametrize("old_version,new_version", VERSION_PAIRS)
def test_second_connection_closes_the_first_MQTT_3_1_4_3(broker, clients, old_version,
                                                         new_version):
    """[MQTT-3.1.4-3] The server closes the existing connection of a client id that connects
    again; a 5.0 client is sent DISCONNECT 0x8E (Session taken over) first, whatever the
    new connection's version. The new connection is accepted and works."""
    old = clients.raw(broker, old_version)
    old.connect("c04-same")
    new = clients.raw(broker, new_version)
    ack = new.connect("c04-same")
    assert ack.session_present is False
    packets = old.expect_closed()
    if old_version == V5:
        assert [(p.type, p.reason) for p in packets] == \
            [(DISCONNECT, Reason.SESSION_TAKEN_OVER)], packets
    else:
        assert packets == []
    new.subscribe("c04/after", 0)
    new.publish("c04/after", b"works")
    assert new.receive().payload == b"works"


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_with_clean_start_0_keeps_the_session_MQTT_3_2_2_2(broker, clients, version):
    """[MQTT-3.1.2-4], [MQTT-3.2.2-2] Taking over with Clean Start 0 resumes the session:
    CONNACK has Session Present 1 and the subscriptions made on the old connection deliver
    to the new one; the old one gets nothing more."""
    old = clients.connected(broker, "c04-keep", version, **persistent(version))
    old.subscribe("c04/keep/#", 1)
    new = clients.raw(broker, version)
    ack = new.connect("c04-keep", **persistent(version))
    assert ack.session_present is True
    old.expect_closed()

    pub = clients.connected(broker, "c04-pub", version)
    pub.publish("c04/keep/1", b"to the new connection", qos=1)
    p = new.receive()
    assert (p.topic, p.payload, p.qos) == ("c04/keep/1", b"to the new connection", 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_with_clean_start_1_discards_the_session_MQTT_3_1_2_6(broker, clients,
                                                                      version):
    """[MQTT-3.1.2-6], [MQTT-3.2.2-1] Taking over with Clean Start 1 discards the old
    session: Session Present 0 and the old subscriptions deliver nothing."""
    old = clients.connected(broker, "c04-discard", version, **persistent(version))
    old.subscribe("c04/discard/#", 1)
    new = clients.raw(broker, version)
    ack = new.connect("c04-discard", **persistent(version, clean=True))
    assert ack.session_present is False
    old.expect_closed()

    pub = clients.connected(broker, "c04-pub", version)
    pub.publish("c04/discard/1", b"nobody", qos=1)
    assert new.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_resends_unacknowledged_messages_MQTT_4_4_0_1(broker, clients, version):
    """[MQTT-4.4.0-1] A QoS 1 message the old connection received but did not acknowledge
    is resent to the new connection, with DUP 1 and the same packet id [MQTT-3.3.1-1]."""
    old = clients.connected(broker, "c04-inflight", version, **persistent(version))
    old.subscribe("c04/inflight", 1)
    pub = clients.connected(broker, "c04-pub", version)
    pub.publish("c04/inflight", b"unacked", qos=1)
    first = old.receive(ack=False)
    assert (first.qos, first.dup) == (1, False)

    new = clients.raw(broker, version)
    assert new.connect("c04-inflight", **persistent(version)).session_present
    again = new.receive(ack=True)
    assert (again.type, again.payload, again.qos, again.dup, again.packet_id) == \
        (PUBLISH, b"unacked", 1, True, first.packet_id), again
    assert new.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_repeated_takeovers(broker, clients, version):
    """Five connections in a row with one client id: each closes the one before, and the
    last one owns the (persistent) session."""
    conns = []
    for i in range(5):
        c = clients.raw(broker, version)
        ack = c.connect("c04-chain", **persistent(version))
        assert ack.session_present is (i > 0)
        if i == 0:
            c.subscribe("c04/chain", 1)
        if conns:
            conns[-1].expect_closed()
        conns.append(c)
    pub = clients.connected(broker, "c04-pub", version)
    pub.publish("c04/chain", b"last", qos=1)
    assert conns[-1].receive().payload == b"last"


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_of_a_clean_session_does_not_resume_it_MQTT_3_1_2_6(broker, clients,
                                                                      version):
    """[MQTT-3.1.2-6] (5.0: Session Expiry 0, spec 3.1.2.11.2) A session started clean lasts
    as long as its network connection. When another connection takes the client id over,
    that session ends with the old connection: the new one (Clean Start 0) gets Session
    Present 0 and none of the old subscriptions, as in Mosquitto."""
    old = clients.connected(broker, "c04-clean-old", version, clean=True)
    old.subscribe("c04/clean", 1)
    new = clients.raw(broker, version)
    ack = new.connect("c04-clean-old", **persistent(version))
    old.expect_closed()
    pub = clients.connected(broker, "c04-pub", version)
    pub.publish("c04/clean", b"old subscription", qos=1)
    got = new.barrier()
    assert (ack.session_present, got) == (False, []), (ack, got)
