# SPDX-License-Identifier: Apache-2.0
"""12 connections: many clients at once (src/net/, src/app/server.cpp). Ten thousand raw
connections, half 3.1.1 and half 5.0, are opened, CONNACKed, held, pinged and closed; the
broker's file descriptors and memory must come back to where they started.

The sockets are non-blocking and driven by one selector, with a bounded number of
handshakes in progress so that the listen backlog never overflows (a dropped SYN costs a
one-second retransmission)."""
import errno
import os
import resource
import selectors
import socket
import time

import pytest

from mqtt_helpers import (CONNACK, PINGREQ_PACKET, PINGRESP, TIMEOUT, V311, V5, FrameParser,
                          RawClient, Reason, connect_packet)

CONNECTIONS = 10_000
# Handshakes in progress at once: well below the broker's listen backlog of 511.
IN_PROGRESS = 256
# The bound on the whole open or close phase; generous for an ASan build on 2 cores.
PHASE_TIMEOUT = max(TIMEOUT, 20.0)
MIB = 1024 * 1024


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def open_files_limit(pid):
    """(soft, hard) "Max open files" of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise KeyError("Max open files")


def wait_until(predicate, timeout, what):
    """Polls `predicate` until it holds, for at most `timeout` seconds; used only where the
    broker leaves no other trace (it logs nothing per closed connection)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not true after {timeout}s")
        time.sleep(0.02)


def swarm_version(index):
    """The protocol level of the swarm's connection `index`: alternately 3.1.1 and 5.0."""
    return V311 if index % 2 == 0 else V5


def raise_own_fd_limit(needed):
    """Lifts this process's RLIMIT_NOFILE to at least `needed` (the hard limit too when
    allowed, as for root); returns the hard limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError) as e:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed} and cannot be raised: {e}")
        soft, hard = needed, needed
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Swarm:
    """Many raw connections driven by one selector. Each round (open, ping) runs every
    socket through a small state machine until all are done or the deadline passes."""

    def __init__(self, address):
        self.address = address
        self.sockets = []
        self.selector = selectors.DefaultSelector()

    def open(self, count, deadline):
        """Opens `count` connections, sends each a CONNECT (alternately 3.1.1 and 5.0) and
        waits for a successful CONNACK on every one."""
        started = 0
        in_progress = 0
        done = 0
        while done < count:
            while in_progress < IN_PROGRESS and started < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                self.sockets.append(sock)
                rc = sock.connect_ex(self.address)
                assert rc in (0, errno.EINPROGRESS), f"connect #{started}: {os.strerror(rc)}"
                version = swarm_version(started)
                state = {"index": started, "version": version, "step": "connecting",
                         "parser": FrameParser(version)}
                self.selector.register(sock, selectors.EVENT_WRITE, state)
                started += 1
                in_progress += 1
            for key, _ in self._select(deadline, f"{done} of {count} connections CONNACKed"):
                sock, state = key.fileobj, key.data
                if state["step"] == "connecting":
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    assert error == 0, f"connection #{state['index']}: {os.strerror(error)}"
                    sock.send(connect_packet(f"swarm-{state['index']}", state["version"]))
                    state["step"] = "connack"
                    self.selector.modify(sock, selectors.EVENT_READ, state)
                    continue
                packets = self._receive(sock, state)
                if packets:
                    assert len(packets) == 1, packets
                    ack = packets[0]
                    assert (ack.type, ack.reason) == (CONNACK, Reason.SUCCESS), \
                        (state["index"], ack)
                    self.selector.unregister(sock)
                    in_progress -= 1
                    done += 1

    def ping(self, deadline):
        """Sends PINGREQ on every connection and waits for every PINGRESP."""
        for index, sock in enumerate(self.sockets):
            sock.send(PINGREQ_PACKET)
            self.selector.register(sock, selectors.EVENT_READ,
                                   {"index": index, "parser": FrameParser(swarm_version(index))})
        waiting = len(self.sockets)
        while waiting:
            for key, _ in self._select(deadline, f"{waiting} PINGRESPs missing"):
                packets = self._receive(key.fileobj, key.data)
                if packets:
                    assert [p.type for p in packets] == [PINGRESP], packets
                    self.selector.unregister(key.fileobj)
                    waiting -= 1

    def close(self):
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        self.selector.close()

    def _select(self, deadline, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out: {what}")
        return self.selector.select(remaining)

    def _receive(self, sock, state):
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return []
        except ConnectionResetError:
            data = b""
        assert data, f"connection #{state['index']} closed by the broker"
        return state["parser"].feed(data)


def sanitized(broker):
    """Whether the broker is an ASan build, whose quarantine keeps freed memory resident."""
    with open(broker.argv[0], "rb") as binary:
        return b"__asan_init" in binary.read()


def settle(broker):
    """Returns once the broker has run a full loop turn after the closes it has seen: the
    registry drops closed connections at the start of the next turn (Server::flush_all),
    and a round trip on a new connection takes at least one."""
    with RawClient(broker, V311) as probe:
        probe.connect("settle")
        assert probe.barrier() == []
        assert probe.disconnect() == []


def start_with_low_soft_limit(start_broker):
    """Starts a broker whose soft RLIMIT_NOFILE is the usual 1024 (hard: high enough for
    CONNECTIONS): it must lift the soft limit itself (Server::raise_fd_limit). This process
    gets its own limit back at once."""
    hard = raise_own_fd_limit(CONNECTIONS + 1024)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        broker = start_broker()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert open_files_limit(broker.pid) == (hard, hard)
    return broker


def connect_hold_close(broker, fds_start):
    """One round: CONNECTIONS clients connect, all answer a PINGREQ while a newcomer is
    still served, then all close; returns once the broker's fds are back to `fds_start`."""
    swarm = Swarm(broker.addresses[0])
    try:
        swarm.open(CONNECTIONS, time.monotonic() + PHASE_TIMEOUT)
        assert fd_count(broker.pid) == fds_start + CONNECTIONS
        swarm.ping(time.monotonic() + PHASE_TIMEOUT)
        settle(broker)
        rss_held = rss_bytes(broker.pid)
    finally:
        swarm.close()
    wait_until(lambda: fd_count(broker.pid) == fds_start, PHASE_TIMEOUT,
               f"broker fds back to {fds_start} (now {fd_count(broker.pid)})")
    settle(broker)
    return rss_held


def test_10000_connections_are_accepted_held_and_released(start_broker):
    broker = start_with_low_soft_limit(start_broker)
    connect_hold_close(broker, fd_count(broker.pid))
    assert "refused" not in broker.log_text()
    assert broker.stop() == 0


def test_memory_comes_back_after_10000_connections(start_broker):
    broker = start_with_low_soft_limit(start_broker)
    if sanitized(broker):
        pytest.skip("ASan's quarantine keeps freed memory resident: RSS says nothing here")
    fds_start = fd_count(broker.pid)
    rss_start = rss_bytes(broker.pid)
    rss_held = []
    rss_after = []
    # Two rounds: the second must reuse what the first freed, or something leaks.
    for _ in range(2):
        rss_held.append(connect_hold_close(broker, fds_start))
        # The broker hands freed heap pages back on its next housekeeping tick (1 s).
        deadline = time.monotonic() + 5
        while rss_bytes(broker.pid) >= rss_start + 2 * MIB and time.monotonic() < deadline:
            time.sleep(0.05)
        rss_after.append(rss_bytes(broker.pid))

    summary = (f"RSS at start {rss_start / MIB:.1f} MiB; held "
               f"{', '.join(f'{r / MIB:.1f}' for r in rss_held)} MiB; after closing "
               f"{', '.join(f'{r / MIB:.1f}' for r in rss_after)} MiB")
    assert rss_held[1] < rss_held[0] + 2 * MIB, f"memory grows per round: {summary}"
    assert rss_after[1] < rss_after[0] + 2 * MIB, f"memory grows per round: {summary}"
    if rss_after[1] >= rss_start + 8 * MIB:
        pytest.fail(f"broker RSS not back near its start: {summary}")
