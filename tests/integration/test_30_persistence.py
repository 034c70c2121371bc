# SPDX-License-Identifier: Apache-2.0
"""30 persistence: retained messages and persistent sessions live in SQLite
(<data_dir>/ferrymq.db) and survive a clean stop and kill -9. A QoS 1/2 message the broker
must keep is acknowledged only after the transaction holding it committed, so whatever a
publisher saw acknowledged is delivered after a crash."""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from mqtt_helpers import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, V311, V5, Prop,
                          ConnectionClosed, RawClient, Reason, ack_packet, connect_packet,
                          persistent, publish_packet)
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

QUOTA_EXCEEDED = 0x97


def leave_subscribed(clients, broker, client_id, topic_filter, version=V5, qos=1):
    """Makes a persistent session subscribed to `topic_filter` and disconnects it, so what
    matches from now on is queued (and stored) for it."""
    client = clients.raw(broker, version)
    client.connect(client_id, **persistent(version))
    client.subscribe(topic_filter, qos=qos)
    client.close()


def received_payloads(client, expected, timeout=30):
    """Receives (and acknowledges) PUBLISHes until `expected` distinct payloads arrived or
    nothing more comes; returns every payload in arrival order, duplicates included."""
    got = []
    distinct = set()
    deadline = time.monotonic() + timeout
    while len(distinct) < expected:
        p = client.receive(timeout=max(deadline - time.monotonic(), 0.1))
        got.append(p.payload)
        distinct.add(p.payload)
    return got


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill-9"])
def test_retained_and_subscriptions_survive_a_restart(start_broker, clients, version, sig):
    b = start_broker()
    leave_subscribed(clients, b, "s30-sub", "t30/#", version=version)
    pub = clients.raw(b, version)
    pub.connect("s30-pub")
    pub.publish("t30/retained", b"kept", qos=1, retain=True)
    pub.publish("t30/queued", b"waiting", qos=1)
    pub.close()

    b2 = start_broker.restart(b, sig=sig)
    assert b2.wait_for_log(r"restored 1 retained messages, 1 sessions, 2 queued")
    back = clients.raw(b2, version)
    ack = back.connect("s30-sub", **persistent(version))
    assert ack.session_present
    got = [back.receive().payload for _ in range(2)]
    assert got == [b"kept", b"waiting"]
    # The subscription is there: a new message reaches the session.
    pub2 = clients.raw(b2, version)
    pub2.connect("s30-pub2")
    pub2.publish("t30/new", b"after", qos=1)
    assert back.receive().payload == b"after"
    # A new subscriber gets the retained message [MQTT-3.3.1-6].
    other = clients.raw(b2, version)
    other.connect("s30-other")
    other.subscribe("t30/retained", qos=1)
    p = other.receive()
    assert (p.payload, p.retain) == (b"kept", True)


def test_kill_9_during_a_stream_loses_no_acknowledged_message(start_broker, clients):
    """kill -9 while a publisher streams 10,000 QoS 1 messages to a persistent subscriber
    that is offline with 1,000 already queued: after the restart every message whose PUBACK
    the publisher received is delivered at least once, in order."""
    b = start_broker(config_text="limits:\n  max_queued_messages: 20000\n")
    leave_subscribed(clients, b, "k30-sub", "k30")
    pre = clients.raw(b, V5)
    pre.connect("k30-pre")
    for i in range(1000):
        pre.publish("k30", b"%06d" % i, qos=1, complete=False)
    for _ in range(1000):
        assert pre.expect(PUBACK).reason == 0
    pre.close()

    acked = []
    done = threading.Event()

    def stream():
        # A window of 100 PUBLISHes in flight, like a busy device; stops when the broker dies.
        pub = RawClient(b, V5)
        try:
            pub.connect("k30-stream")
            ids = {}
            next_seq = 1000
            while next_seq < 11000 or ids:
                while next_seq < 11000 and len(ids) < 100:
                    pid = pub.new_id()
                    pub.send(publish_packet("k30", b"%06d" % next_seq, 1, pid, version=V5))
                    ids[pid] = next_seq
                    next_seq += 1
                p = pub.expect(PUBACK)
                assert p.reason == 0, p
                acked.append(ids.pop(p.packet_id))
        except (ConnectionClosed, OSError):
            pass
        finally:
            pub.close()
            done.set()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 4000 and not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(acked) >= 4000, f"only {len(acked)} acknowledged"
    b.kill()
    assert done.wait(30)
    t.join(5)
    acknowledged = list(acked)
    assert len(acknowledged) < 10000, "the stream ended before the kill: nothing was tested"

    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    back = clients.raw(b2, V5)
    assert back.connect("k30-sub", **persistent(V5)).session_present
    wanted = 1000 + len(acknowledged)
    got = received_payloads(back, wanted, timeout=120)
    # Duplicates are allowed (at least once) but only as redelivery: first arrivals in order.
    first = list(dict.fromkeys(int(p) for p in got))
    assert first == sorted(first), "messages out of order"
    assert set(range(1000)) <= set(first), "pre-queued messages lost"
    missing = set(acknowledged) - set(first)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"


def test_shared_group_messages_reach_another_member_after_kill_9(start_broker, clients):
    """Messages a shared subscription group queued for an offline member keep their group
    across kill -9: when that member's session ends, they go to another member of the group
    instead of ending with the session (spec 4.8.2)."""
    b = start_broker()
    for client_id in ("g30-a", "g30-b"):
        leave_subscribed(clients, b, client_id, "$share/g30/t30s")
    pub = clients.raw(b, V5)
    pub.connect("g30-pub")
    for i in range(6):
        pub.publish("t30s", str(i).encode(), qos=1)  # PUBACK: committed
    pub.close()

    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    assert b2.wait_for_log(r"restored 0 retained messages, 2 sessions, 6 queued")
    a = clients.raw(b2, V5)
    assert not a.connect("g30-a", clean=True).session_present  # its old session ends
    assert a.barrier() == []
    b_back = clients.raw(b2, V5)
    assert b_back.connect("g30-b", **persistent(V5)).session_present
    got = received_payloads(b_back, 6)
    assert sorted(got) == [str(i).encode() for i in range(6)]


def test_qos2_flow_resumes_exactly_once_after_kill_9(start_broker, clients):
    """Inbound: the packet id awaiting PUBREL survives, so a resent PUBLISH is not routed
    again [MQTT-4.3.3-10]. Outbound: a message whose PUBREC arrived continues with PUBREL,
    not with the PUBLISH again [MQTT-4.4.0-1]."""
    b = start_broker()
    sub = clients.raw(b, V5)
    sub.connect("q30-sub", **persistent(V5))
    sub.subscribe("q30", qos=2)
    pub = clients.raw(b, V5)
    pub.connect("q30-pub", **persistent(V5))
    pub.send(publish_packet("q30", b"once", 2, 7, version=V5))
    assert pub.expect(PUBREC, 7).reason == 0
    p = sub.receive(ack=False)
    assert p.payload == b"once"
    sub.send(ack_packet(PUBREC, p.packet_id, V5))
    sub.expect(PUBREL, p.packet_id)  # the broker moved on to PUBREL

    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    pub2 = clients.raw(b2, V5)
    assert pub2.connect("q30-pub", **persistent(V5)).session_present
    # The publisher did not see PUBREC in time and resends with DUP, then releases.
    pub2.send(publish_packet("q30", b"once", 2, 7, dup=True, version=V5))
    assert pub2.expect(PUBREC, 7).reason == 0
    pub2.send(ack_packet(PUBREL, 7, V5))
    assert pub2.expect(PUBCOMP, 7).reason == 0
    sub2 = clients.raw(b2, V5)
    assert sub2.connect("q30-sub", **persistent(V5)).session_present
    rel = sub2.expect(PUBREL, p.packet_id)
    assert rel.packet_id == p.packet_id
    sub2.send(ack_packet(PUBCOMP, p.packet_id, V5))
    assert sub2.barrier() == [], "the message was routed twice"


def test_session_and_message_expiry_count_across_a_restart(start_broker, clients):
    """A session whose Session Expiry Interval passed while the broker was down is gone
    [MQTT-3.1.2-23]; a message whose Message Expiry Interval passed is not delivered
    [MQTT-3.3.2-5], one still alive carries the time left [MQTT-3.3.2-6]."""
    b = start_broker()
    short = clients.raw(b, V5)
    short.connect("e30-short", clean=False, session_expiry=1)
    short.close()
    leave_subscribed(clients, b, "e30-sub", "e30")
    pub = clients.raw(b, V5)
    pub.connect("e30-pub")
    pub.publish("e30", b"short-lived", qos=1, props={Prop.MESSAGE_EXPIRY_INTERVAL: 1})
    pub.publish("e30", b"long-lived", qos=1, props={Prop.MESSAGE_EXPIRY_INTERVAL: 600})
    b.stop()
    time.sleep(1.5)  # the time that passes while the broker is down is what is tested
    b2 = start_broker.restart(b)
    assert b2.wait_for_log(r"\(1 expired while stopped\)")
    back = clients.raw(b2, V5)
    assert not back.connect("e30-short", clean=False, session_expiry=1).session_present
    back2 = clients.raw(b2, V5)
    assert back2.connect("e30-sub", **persistent(V5)).session_present
    p = back2.receive()
    assert p.payload == b"long-lived"
    assert p.properties[Prop.MESSAGE_EXPIRY_INTERVAL] < 600
    assert back2.barrier() == []


def test_will_of_a_client_connected_at_the_crash_is_published_after_restart(start_broker, clients):
    """The broker died under a connected client: its connection ended without DISCONNECT, so
    after the restart the session is offline and its will is published [MQTT-3.1.2-8]."""
    b = start_broker()
    c = clients.raw(b, V5)
    from mqtt_helpers import Will
    c.connect("w30", **persistent(V5), will=Will("w30/status", b"gone", qos=1))
    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    watcher = clients.raw(b2, V5)
    watcher.connect("w30-watch")
    watcher.subscribe("w30/#", qos=1)
    assert watcher.receive(timeout=5).payload == b"gone"


def test_store_full_refuses_with_quota_exceeded(start_broker, clients):
    """storage.max_size reached, full_policy refuse: a QoS 1 PUBLISH bound for a persistent
    session gets 0x97 (5.0); a 3.1.1 publisher, who has no reason codes, is disconnected
    without PUBACK and keeps its message. Other traffic goes on."""
    b = start_broker(config_text="storage:\n  max_size: 1\n  full_policy: refuse\n")
    leave_subscribed(clients, b, "f30-sub", "f30")
    pub = clients.raw(b, V5)
    pub.connect("f30-pub")
    pub.send(publish_packet("f30", b"x", 1, 1, version=V5))
    assert pub.expect(PUBACK, 1).reason == QUOTA_EXCEEDED
    pub.send(publish_packet("f30-other", b"x", 1, 2, version=V5))
    assert pub.expect(PUBACK, 2).reason == Reason.NO_MATCHING_SUBSCRIBERS
    old = clients.raw(b, V311)
    old.connect("f30-old")
    old.send(publish_packet("f30", b"x", 1, 3))
    assert all(p.type != PUBACK for p in old.expect_closed())


def test_store_full_drop_oldest_makes_room_for_the_new_message(start_broker, clients):
    """storage.max_size reached, full_policy drop_oldest: every QoS 1 PUBLISH is accepted and
    the receiving session's oldest queued message goes instead."""
    b = start_broker(config_text="storage:\n  max_size: 1\n  full_policy: drop_oldest\n")
    leave_subscribed(clients, b, "d30-sub", "d30")
    pub = clients.raw(b, V5)
    pub.connect("d30-pub")
    for i in range(1, 4):
        pub.send(publish_packet("d30", str(i).encode(), 1, i, version=V5))
        assert pub.expect(PUBACK, i).reason == Reason.SUCCESS
    sub = clients.raw(b, V5)
    sub.connect("d30-sub", **persistent(V5))
    got = [sub.receive().payload]
    while got[-1] != b"3":
        got.append(sub.receive().payload)
    assert got[0] != b"1"  # the oldest made room


def test_a_damaged_database_is_moved_aside(start_broker, tmp_path):
    data = tmp_path / "data30"
    data.mkdir()
    (data / "ferrymq.db").write_bytes(b"this is not an SQLite database" * 100)
    b = start_broker(data_dir=data)
    assert b.wait_for_log(r"moved the damaged .*ferrymq\.db aside")
    assert any(p.name.startswith("ferrymq.db.corrupt-") for p in data.iterdir())
    assert b.is_running()


def test_a_data_dir_in_use_by_another_broker_is_refused(start_broker, tmp_path):
    data = tmp_path / "shared-data"
    first = start_broker(data_dir=data)
    second = start_broker(data_dir=data, wait=False)
    assert second.wait_for_exit() != 0
    assert re.search(r"in use by another process", second.log_text())
    assert first.is_running()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted for the test, for a disk that fills up; needs root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_keeps_the_broker_serving_and_reports_it(small_tmpfs, start_broker, clients):
    """A full disk: the failed commit is logged with the SQLite error name, counted and
    reported in $SYS; the broker keeps serving from memory, and once there is room again
    it writes its whole state back and says durability is restored."""
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * 600 * 1024)
    data = small_tmpfs / "data"
    b = start_broker(data_dir=data, config_text="sys:\n  interval: 1\n")
    watch = clients.raw(b, V5)
    watch.connect("d30-watch")
    watch.subscribe("$SYS/broker/store/degraded", qos=0)
    assert watch.receive(timeout=5).payload == b"0"
    leave_subscribed(clients, b, "d30-sub", "d30")
    pub = clients.raw(b, V5)
    pub.connect("d30-pub")
    payload = b"x" * 32 * 1024
    for i in range(16):  # 512 KiB into the 400 KiB left
        pub.publish("d30", payload, qos=1)  # still acknowledged: kept in memory
    assert b.wait_for_log(r"SQLITE_FULL")
    assert b.wait_for_log(r"durability degraded")
    assert watch.receive(timeout=5).payload == b"1"
    # Still serving: live traffic flows and the queued messages are delivered from memory.
    live = clients.raw(b, V5)
    live.connect("d30-live")
    live.subscribe("d30-live", qos=1)
    pub.publish("d30-live", b"hello", qos=1)
    assert live.receive().payload == b"hello"
    mark = b.log_mark()
    filler.unlink()
    assert b.wait_for_log(r"durability restored", since=mark, timeout=15)
    assert watch.receive(timeout=5).payload == b"0"
    # What was kept in memory meanwhile is in the database now: it survives a kill.
    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    back = clients.raw(b2, V5)
    assert back.connect("d30-sub", **persistent(V5)).session_present
    got = [back.receive().payload for _ in range(16)]
    assert got == [payload] * 16
    b2.stop()


def test_flush_interval_holds_the_ack_until_the_commit(start_broker, clients):
    """storage.flush_interval: 300 gathers the writes of 300 ms into one commit, and the
    PUBACK of a message stored for an offline session waits for it."""
    b = start_broker(config_text="storage:\n  flush_interval: 300\n")
    leave_subscribed(clients, b, "i30-sub", "i30")
    pub = clients.raw(b, V5)
    pub.connect("i30-pub")
    started = time.monotonic()
    pub.send(publish_packet("i30", b"x", 1, 1, version=V5))
    assert pub.expect(PUBACK, 1, timeout=5).reason == 0
    assert time.monotonic() - started >= 0.25


@pytest.mark.parametrize("durability", ["crash", "power"])
def test_durability_modes_survive_kill_9(start_broker, clients, durability):
    b = start_broker(config_text=f"storage:\n  durability: {durability}\n")
    sub = clients.raw(b, V311)
    sub.connect("p30-sub", clean=False)
    sub.subscribe("p30", qos=1)
    sub.close()
    pub = clients.raw(b, V311)
    pub.connect("p30-pub")
    for i in range(20):
        pub.publish("p30", b"%d" % i, qos=1)
    b2 = start_broker.restart(b, sig=signal.SIGKILL)
    back = clients.raw(b2, V311)
    assert back.connect("p30-sub", clean=False).session_present
    assert [back.receive().payload for _ in range(20)] == [b"%d" % i for i in range(20)]
