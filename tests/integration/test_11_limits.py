# SPDX-License-Identifier: Apache-2.0
"""11 limits: the `limits:` keys of the configuration as a client meets them, over real
sockets with the raw client (mqtt_helpers.RawClient), in 3.1.1 and 5.0 where the limit
applies to both.

- max_connections: connections past the limit are closed at accept (src/app/server.cpp).
- max_packet_size: an inbound packet is refused from its fixed header (src/net/connection.cpp);
  an outbound one larger than a 5.0 client's Maximum Packet Size is dropped (broker.cpp).
- max_inflight and Receive Maximum: the send window for QoS 1/2 (Broker::send_window).
- max_queued_messages, max_queued_bytes: the session queue keeps the newest, dropping
  QoS 0 first; a message that could never fit evicts nothing.
- client_buffer_bytes, max_queued_bytes, max_pending_bytes: a subscriber that never reads
  costs bounded memory while everyone else carries on, and cannot hold up a stop; a
  subscriber that comes back drains its queue while publishers are paused.
"""
import contextlib

import pytest

from mqtt_helpers import (DISCONNECT, PUBACK, PUBCOMP, PUBREC, PUBREL, V311, V5, Prop,
                          RawClient, Reason, WaitTimeout, ack_packet, connect_packet,
                          fixed_header, payload_length_for, persistent, publish_packet)

VERSIONS = [pytest.param(V311, id="3.1.1"), pytest.param(V5, id="5.0")]

KIB = 1024
MIB = 1024 * 1024


def limits_config(**limits):
    """A configuration whose only section is `limits:` with the given keys."""
    lines = ["limits:"] + [f"  {key}: {value}" for key, value in limits.items()]
    return "\n".join(lines) + "\n"


def open_client(broker, version, client_id, **connect_args):
    """A raw client connected (CONNACK 0 received) as `client_id`."""
    client = RawClient(broker, version)
    try:
        client.connect(client_id, **connect_args)
    except BaseException:
        client.close()
        raise
    return client


def persistent_args(version, resume=False):
    """CONNECT arguments for a session that outlives the connection: clean session 0 in
    3.1.1; in 5.0 a Session Expiry Interval, with Clean Start only the first time."""
    return persistent(version, clean=version == V5 and not resume)


def subscribe(client, topic_filter, qos):
    """Subscribes to one filter and returns the SUBACK, which must grant `qos`."""
    ack = client.subscribe(topic_filter, qos)
    assert ack.reasons == [qos], f"{ack} for QoS {qos}"
    return ack


def payloads(messages):
    return [m.payload.decode() for m in messages]


def sanitized(broker):
    """Whether the broker is an ASan build, whose quarantine keeps freed memory resident."""
    with open(broker.argv[0], "rb") as binary:
        return b"__asan_init" in binary.read()


def proc_status_kib(pid, key):
    """A "kB" field of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


# --- max_connections -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_max_connections_closes_the_next_connection_at_once(start_broker, version):
    # connect_timeout is far above the bounded waits, so a close seen here is the refusal.
    broker = start_broker(config_text=limits_config(max_connections=5, connect_timeout=60))
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(open_client(broker, version, f"c{i}")) for i in range(5)]

        mark = broker.log_mark()
        extra = stack.enter_context(RawClient(broker, version))
        broker.wait_for_log(r"connection on \S+ refused: 5 connections open \(limit 5\)",
                            since=mark)
        try:
            extra.send(connect_packet("c5", version))
        except OSError:
            pass  # already reset: refused before the CONNECT arrived
        packets = extra.expect_closed()
        assert packets == [], "the refused connection must get no CONNACK"

        # The five are untouched.
        for client in clients:
            assert client.barrier() == []

        # A slot freed by a normal DISCONNECT is available again.
        assert clients[0].disconnect() == []
        newcomer = stack.enter_context(open_client(broker, version, "c6"))
        assert newcomer.barrier() == []
        for client in clients[1:]:
            assert client.barrier() == []


# --- max_packet_size, inbound --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_inbound_packet_of_exactly_max_packet_size_is_accepted(start_broker, version):
    broker = start_broker(config_text=limits_config(max_packet_size=1024))
    with open_client(broker, version, "sub") as sub, \
            RawClient(broker, version) as pub:
        ack = pub.connect("pub")
        if version == 5:
            assert ack.properties.get(Prop.MAXIMUM_PACKET_SIZE) == 1024
        subscribe(sub, "size/#", 1)
        payload_length = payload_length_for("size/a", 1024, 1, version)
        pub.publish("size/a", b"x" * payload_length, qos=1)
        (message,) = sub.barrier(ack=False)
        assert len(message.payload) == payload_length
        assert pub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_inbound_packet_too_large_is_refused_from_its_fixed_header(start_broker, version):
    """Only the fixed header of a 2000-byte PUBLISH is sent: the broker must refuse it
    without waiting for a body it would have to buffer."""
    broker = start_broker(config_text=limits_config(max_packet_size=1024))
    with open_client(broker, version, "sub") as sub, open_client(broker, version, "pub") as pub:
        subscribe(sub, "size/#", 0)
        header = fixed_header(0x30, 2000 - 3)
        assert len(header) + 2000 - 3 == 2000
        pub.send(header)
        packets = pub.expect_closed()
        if version == 5:
            assert [(p.type, p.reason) for p in packets] == \
                [(DISCONNECT, Reason.PACKET_TOO_LARGE)]
        else:
            assert packets == []
        assert sub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_inbound_packet_one_byte_over_max_packet_size_is_refused(start_broker, version):
    broker = start_broker(config_text=limits_config(max_packet_size=1024))
    with open_client(broker, version, "sub") as sub, open_client(broker, version, "pub") as pub:
        subscribe(sub, "size/#", 0)
        payload_length = payload_length_for("size/a", 1025, 0, version)
        pub.send(publish_packet("size/a", b"x" * payload_length, version=version))
        packets = pub.expect_closed()
        if version == 5:
            assert [(p.type, p.reason) for p in packets] == \
                [(DISCONNECT, Reason.PACKET_TOO_LARGE)]
        else:
            assert packets == []
        assert sub.barrier() == [], "the refused PUBLISH must not be routed"


# --- Maximum Packet Size of a 5.0 client, outbound ------------------------------------------


def test_outbound_publish_larger_than_client_maximum_packet_size_is_dropped(start_broker):
    broker = start_broker()
    limit = 128
    topic = "big/t"
    with RawClient(broker, 5) as sub, open_client(broker, 4, "pub") as pub:
        sub.connect("sub", props={Prop.MAXIMUM_PACKET_SIZE: limit})
        subscribe(sub, "big/#", 1)
        fits = {qos: payload_length_for(topic, limit, qos, 5) for qos in (0, 1)}
        sent = []
        for qos in (0, 1):
            # One byte over the client's limit in the layout it would receive, then exactly
            # the limit, then a small one: only the last two may arrive, in order.
            pub.publish(topic, b"L" * (fits[qos] + 1), qos=qos)
            pub.publish(topic, b"F" * fits[qos], qos=qos)
            pub.publish(topic, f"small {qos}", qos=qos)
            sent += [(qos, b"F" * fits[qos]), (qos, f"small {qos}".encode())]
        received = sub.barrier(ack=False)
        assert [(m.qos, m.payload) for m in received] == sent
        for message in received:
            if message.qos:
                sub.send(ack_packet(PUBACK, message.packet_id, 5))
        assert sub.barrier() == [], "a dropped QoS 1 message must not be sent later"


def test_message_in_flight_too_large_for_the_resumed_connection_is_discarded(start_broker):
    """[MQTT-3.1.2-25]: a packet too large to send is discarded and the server behaves as if
    it had completed sending the message, so it cannot block the session's window."""
    broker = start_broker()
    with open_client(broker, 4, "pub") as pub:
        with open_client(broker, 5, "sub", **persistent_args(5)) as sub:
            subscribe(sub, "big/#", 1)
            pub.publish("big/t", b"B" * 500, qos=1)
            (big,) = sub.barrier(ack=False)
            assert len(big.payload) == 500
        # Gone without acknowledging it; back with room for small packets and one at a time.
        with RawClient(broker, 5) as sub:
            ack = sub.connect("sub", clean=False,
                              props={Prop.SESSION_EXPIRY_INTERVAL: 300,
                                     Prop.MAXIMUM_PACKET_SIZE: 128, Prop.RECEIVE_MAXIMUM: 1})
            assert ack.session_present
            assert sub.barrier() == [], "the 500-byte message must not be resent"
            pub.publish("big/t", "small", qos=1)
            assert payloads(sub.barrier(ack=False)) == ["small"]


# --- max_inflight and Receive Maximum ------------------------------------------------------


def check_send_window(sub, pub, version, qos, window, total=20):
    """Publishes `total` messages to a subscriber that acknowledges nothing: exactly
    `window` arrive; completing one acknowledgement lets exactly one more through."""
    for i in range(total):
        pub.publish("win/t", f"m{i}", qos=qos)
    first = sub.barrier(ack=False)
    assert payloads(first) == [f"m{i}" for i in range(window)]
    assert all(m.qos == qos and not m.dup for m in first)
    assert len({m.packet_id for m in first}) == window
    # The messages in flight stay in flight: nothing else comes.
    assert sub.barrier() == []

    if qos == 1:
        sub.send(ack_packet(PUBACK, first[0].packet_id, version))
    else:
        # PUBREC alone does not free the slot: the message is in flight until PUBCOMP.
        sub.send(ack_packet(PUBREC, first[0].packet_id, version))
        pubrel = sub.expect(PUBREL)
        assert (pubrel.packet_id, pubrel.reason) == (first[0].packet_id, Reason.SUCCESS)
        assert sub.barrier(ack=False) == [], "only the PUBREL may come"
        sub.send(ack_packet(PUBCOMP, first[0].packet_id, version))
    more = sub.barrier(ack=False)
    assert payloads(more) == [f"m{window}"]
    assert more[0].packet_id not in {m.packet_id for m in first[1:]}
    assert sub.barrier() == []


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("version", VERSIONS)
def test_max_inflight_bounds_unacknowledged_messages(start_broker, version, qos):
    broker = start_broker(config_text=limits_config(max_inflight=5))
    with open_client(broker, version, "sub") as sub, open_client(broker, 4, "pub") as pub:
        subscribe(sub, "win/#", qos)
        check_send_window(sub, pub, version, qos, window=5)


@pytest.mark.parametrize("qos", [1, 2])
def test_receive_maximum_of_a_5_0_client_is_honoured(start_broker, qos):
    broker = start_broker(config_text=limits_config(max_inflight=5))
    with open_client(broker, 5, "sub", props={Prop.RECEIVE_MAXIMUM: 2}) as sub, \
            open_client(broker, 4, "pub") as pub:
        subscribe(sub, "win/#", qos)
        check_send_window(sub, pub, 5, qos, window=2)


# --- max_queued_messages -------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_session_keeps_the_newest_max_queued_messages(start_broker, version):
    broker = start_broker(config_text=limits_config(max_queued_messages=10))
    with open_client(broker, version, "sub", **persistent_args(version)) as sub:
        subscribe(sub, "queue/#", 1)
        assert sub.disconnect() == []
    with open_client(broker, 4, "pub") as pub:
        for i in range(15):
            pub.publish("queue/t", f"m{i}", qos=1)

    with RawClient(broker, version) as sub:
        ack = sub.connect("sub", **persistent_args(version, resume=True))
        assert ack.session_present
        received = sub.barrier(ack=False)
        assert payloads(received) == [f"m{i}" for i in range(5, 15)]
        assert all(m.qos == 1 for m in received)
        for message in received:
            sub.send(ack_packet(PUBACK, message.packet_id, version))
        assert sub.barrier() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_full_queue_drops_qos0_first_then_the_oldest(start_broker, version):
    """A connected subscriber whose send window is full: new messages wait in its session
    queue (QoS 0 too, to keep the order). Once the queue holds 10, each new message first
    evicts a queued QoS 0 message, and only when none is left the oldest message."""
    broker = start_broker(config_text=limits_config(max_queued_messages=10, max_inflight=5))
    with open_client(broker, version, "sub") as sub, open_client(broker, 4, "pub") as pub:
        subscribe(sub, "queue/#", 1)
        for i in range(5):
            pub.publish("queue/t", f"a{i}", qos=1)  # fills the window
        for i in range(5):
            pub.publish("queue/t", f"b{i}", qos=1)
        pub.publish("queue/t", "z0", qos=0)
        pub.publish("queue/t", "z1", qos=0)
        for i in range(5, 12):
            pub.publish("queue/t", f"b{i}", qos=1)  # b8..b11 overflow the queue of 10

        received = sub.barrier(ack=False)
        assert payloads(received) == [f"a{i}" for i in range(5)]
        while True:
            for message in received:
                sub.send(ack_packet(PUBACK, message.packet_id, version))
            batch = sub.barrier(ack=False)
            if not batch:
                break
            received += batch
            assert len(received) <= 15, payloads(received)
        # z0 and z1 went for b8 and b9, then the oldest, b0 and b1, for b10 and b11.
        expected = [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(2, 12)]
        assert payloads(received) == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_session_keeps_the_newest_max_queued_bytes(start_broker, version):
    broker = start_broker(config_text=limits_config(max_queued_bytes=1000))
    with open_client(broker, version, "sub", **persistent_args(version)) as sub:
        subscribe(sub, "queue/#", 1)
        assert sub.disconnect() == []
    with open_client(broker, 4, "pub") as pub:
        for i in range(5):
            pub.publish("queue/t", f"{i}".encode() * 300, qos=1)  # 300 payload bytes each
    with RawClient(broker, version) as sub:
        assert sub.connect("sub", **persistent_args(version, resume=True)).session_present
        received = sub.barrier(ack=False)
        # Three of 300 bytes fit in 1000: the newest three.
        assert [m.payload for m in received] == [f"{i}".encode() * 300 for i in (2, 3, 4)]


@pytest.mark.parametrize("version", VERSIONS)
def test_message_larger_than_max_queued_bytes_does_not_evict_the_queue(start_broker, version):
    broker = start_broker(config_text=limits_config(max_queued_bytes=1000))
    with open_client(broker, version, "sub", **persistent_args(version)) as sub:
        subscribe(sub, "queue/#", 1)
        assert sub.disconnect() == []
    with open_client(broker, 4, "pub") as pub:
        for i in range(3):
            pub.publish("queue/t", f"m{i}", qos=1)
        pub.publish("queue/t", b"x" * 1001, qos=1)  # can never be queued
    with RawClient(broker, version) as sub:
        assert sub.connect("sub", **persistent_args(version, resume=True)).session_present
        received = sub.barrier(ack=False)
        assert payloads(received) == ["m0", "m1", "m2"]


# --- backpressure: client_buffer_bytes, max_queued_bytes, max_pending_bytes ----------------


@pytest.mark.parametrize("version", VERSIONS)
def test_subscriber_that_never_reads_costs_bounded_memory(start_broker, version):
    client_buffer = 256 * KIB
    max_queued_bytes = 1 * MIB
    max_pending_bytes = 8 * MIB
    broker = start_broker(config_text=limits_config(
        client_buffer_bytes=client_buffer,
        max_queued_bytes=max_queued_bytes,
        max_pending_bytes=max_pending_bytes,
    ))
    # What the slow subscriber may pin: its unsent output (up to the buffer limit plus the
    # message that crossed it), its queue, and whatever one publisher's read needs. 32 MiB
    # leaves room for allocator slack while catching a copy per message (50 MiB).
    bound = 32 * MIB
    assert client_buffer + max_queued_bytes + max_pending_bytes < bound
    rss_start = proc_status_kib(broker.pid, "VmRSS") * KIB

    payload = bytes(range(256)) * 256  # 64 KiB
    total = 50 * MIB
    with RawClient(broker, version, rcvbuf=4096) as slow, \
            open_client(broker, version, "live") as live, \
            open_client(broker, version, "pub") as pub:
        slow.connect("slow")
        subscribe(slow, "flood/#", 0)
        subscribe(live, "live/#", 0)

        flood = publish_packet("flood/t", payload, version=version)
        sent = 0
        probes = 0
        while sent < total:
            pub.send(flood)
            sent += len(payload)
            if sent % (4 * MIB) == 0:
                # The other subscriber is served while the flood goes on.
                pub.send(publish_packet("live/t", f"probe {probes}", version=version))
                probe = live.receive()
                assert probe.payload == f"probe {probes}".encode()
                probes += 1
        # Every flood message has been read by the broker once the publisher's PINGRESP
        # comes back, so the peak below covers the whole flood.
        assert pub.barrier() == []
        assert live.barrier() == []
        peak = proc_status_kib(broker.pid, "VmHWM") * KIB
        rss_end = proc_status_kib(broker.pid, "VmRSS") * KIB
        assert probes == total // (4 * MIB)
        if sanitized(broker):
            pytest.skip("ASan's quarantine keeps freed memory resident: RSS says nothing here")
        assert peak - rss_start < bound, (
            f"broker RSS grew from {rss_start / MIB:.1f} MiB to a peak of {peak / MIB:.1f} "
            f"MiB (now {rss_end / MIB:.1f} MiB) for one subscriber that never reads")


def test_stop_is_not_held_up_by_a_subscriber_that_never_reads(start_broker):
    """SIGTERM with unsent output for a client that never reads: the broker may try to
    flush, but must give up within a bounded time and exit, not wait for the client."""
    # A buffer limit above the kernel's own buffers (tcp_wmem allows 4 MiB) makes sure that
    # unsent bytes stay in the broker and not only in the kernel.
    broker = start_broker(config_text=limits_config(client_buffer_bytes=8 * MIB))
    payload = bytes(64 * KIB)
    with RawClient(broker, 4, rcvbuf=4096) as slow, \
            open_client(broker, 4, "pub") as pub:
        slow.connect("slow")
        subscribe(slow, "flood/#", 0)
        flood = publish_packet("flood/t", payload)
        for _ in range(256):  # 16 MiB
            pub.send(flood)
        assert pub.barrier() == []
        # The slow client's socket stays open and unread while the broker stops.
        assert broker.stop() == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_returning_subscriber_drains_its_queue_while_publishers_are_paused(start_broker,
                                                                          version):
    """max_pending_bytes pauses publishers "until subscribers catch up": a subscriber that
    comes back must be able to catch up, acknowledgements included."""
    broker = start_broker(config_text=limits_config(max_pending_bytes=1 * MIB, max_inflight=1))
    for client_id in ("back", "away"):
        with open_client(broker, version, client_id, **persistent_args(version)) as sub:
            subscribe(sub, "pending/#", 1)
            assert sub.disconnect() == []
    payload = bytes(64 * KIB)
    count = 12  # 12 x 64 KiB x 2 sessions: the publisher is paused after about 9
    with open_client(broker, 4, "pub") as pub, RawClient(broker, version) as sub:
        for i in range(count):
            pub.publish("pending/t", f"{i:02}".encode() + payload, qos=1, complete=False)
        assert sub.connect("back", **persistent_args(version, resume=True)).session_present
        received = []
        while len(received) < count:
            try:
                message = sub.receive(ack=False)
            except WaitTimeout:
                stalled = f"the returning subscriber stalled after {received}"
                raise AssertionError(stalled) from None
            received.append(int(message.payload[:2]))
            sub.send(ack_packet(PUBACK, message.packet_id, version))
        assert received == list(range(count))
        acks = [pub.expect(PUBACK).packet_id for _ in range(count)]
        assert acks == list(range(1, count + 1))
