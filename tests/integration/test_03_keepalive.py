# SPDX-License-Identifier: Apache-2.0
"""03 keepalive: PINGREQ/PINGRESP (spec 3.12, 3.13) and the server side of the Keep Alive
(spec 3.1.2.10): a client silent for one and a half times its keep-alive is disconnected
and its will published. The broker checks timers once a second, so a 1 s keep-alive ends
between 1.5 s and about 2.5 s after the last packet; the bounds below allow for that."""
import time

import pytest

from mqtt_helpers import (DISCONNECT, PINGREQ_PACKET, PINGRESP, V311, V5, VERSIONS, Reason, Will,
                          publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


@pytest.mark.parametrize("version", VERSIONS)
def test_pingreq_gets_pingresp_MQTT_3_12_4_1(broker, clients, version):
    """[MQTT-3.12.4-1] Each PINGREQ is answered with a PINGRESP (exactly D0 00)."""
    c = clients.raw(broker, version)
    c.connect("c03-ping")
    c.send(PINGREQ_PACKET * 3)
    for _ in range(3):
        assert c.recv().raw == b"\xd0\x00"


@pytest.mark.parametrize("version", VERSIONS)
def test_silent_client_is_disconnected_MQTT_3_1_2_24(broker, clients, version):
    """[MQTT-3.1.2-24] A client with keep-alive 1 s that sends nothing is disconnected after
    1.5 s (not before 1 s, and within 4 s); a 5.0 client first gets DISCONNECT 0x8D (Keep
    Alive timeout) [MQTT-4.13.1-1]; its will is published [MQTT-3.1.2-8]."""
    watcher = clients.raw(broker, version)
    watcher.connect("c03-watcher", keepalive=0)
    watcher.subscribe("c03/will", 1)

    silent = clients.raw(broker, version)
    silent.connect("c03-silent", keepalive=1, will=Will("c03/will", b"silent gone", qos=1))
    start = time.monotonic()
    packets = silent.expect_closed(timeout=4)
    elapsed = time.monotonic() - start
    assert elapsed >= 1.0, f"closed after {elapsed:.2f}s, keep-alive 1 s allows 1.5 s"
    if version == V5:
        assert [(p.type, p.reason) for p in packets] == \
            [(DISCONNECT, Reason.KEEP_ALIVE_TIMEOUT)], packets
    else:
        assert packets == []

    will = watcher.receive()
    assert (will.topic, will.payload, will.qos) == ("c03/will", b"silent gone", 1)


def test_any_packet_keeps_the_connection_alive_MQTT_3_1_2_23(broker, clients):
    """[MQTT-3.1.2-23] Keep-alive counts any control packet, not only PINGREQ: clients that
    publish every 0.4 s are still connected 2.8 s later, well past 1.5 x keep-alive. Both
    versions run side by side to keep the test short."""
    busy = [clients.raw(broker, version) for version in (V311, V5)]
    for c in busy:
        c.connect(f"c03-busy-{c.version}", keepalive=1)
    for i in range(7):
        for c in busy:
            c.send(publish_packet("c03/nobody", str(i), version=c.version))
        busy[0].assert_open_for(0.4)
    for c in busy:
        c.send(PINGREQ_PACKET)
        assert c.recv().type == PINGRESP


def test_keepalive_zero_is_not_timed(broker, clients):
    """[MQTT-3.1.2-10] Keep-alive 0 turns the mechanism off: silent clients with keep-alive
    0 (3.1.1 and 5.0) outlive a silent client with keep-alive 1."""
    idle = [clients.raw(broker, version) for version in (V311, V5)]
    for c in idle:
        c.connect(f"c03-idle-{c.version}", keepalive=0)
    short = clients.raw(broker, V311)
    short.connect("c03-short", keepalive=1)
    short.expect_closed(timeout=4)
    for c in idle:
        c.send(PINGREQ_PACKET)
        assert c.recv().type == PINGRESP
