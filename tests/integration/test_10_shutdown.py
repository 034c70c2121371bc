# SPDX-License-Identifier: Apache-2.0
"""10 shutdown: a broker stopping on SIGTERM or SIGINT tells 5.0 clients why with DISCONNECT
0x8B (Server shutting down, spec 3.14.2.1), closes every other connection, and exits 0."""
import signal

import pytest

from mqtt_helpers import DISCONNECT, V31, V311, V5, Reason
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_disconnects_every_client(broker, clients, sig):
    """5.0 clients receive DISCONNECT 0x8B and then the close; 3.1.1 and 3.1 clients and a
    connection that never sent CONNECT see the socket close with no bytes; exit code 0."""
    v5 = [clients.connected(broker, f"c10-v5-{i}", V5) for i in range(2)]
    v311 = clients.connected(broker, "c10-v311", V311)
    v31 = clients.connected(broker, "c10-v31", V31)
    idle = clients.raw(broker, V311)
    for c in v5:
        c.subscribe("c10/#", 1)  # a session with state does not change the goodbye

    assert broker.stop(sig) == 0
    for c in v5:
        packets = c.expect_closed()
        assert [(p.type, p.reason) for p in packets] == \
            [(DISCONNECT, Reason.SERVER_SHUTTING_DOWN)], packets
    for c in (v311, v31, idle):
        assert c.expect_closed() == []


def _kernel_send_buffer_max():
    """The most a TCP socket's send buffer grows to (autotuning), in bytes."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


def test_stop_with_a_client_that_does_not_read(broker, clients):
    """A subscriber that stops reading while messages for it fill the socket buffers does
    not keep the broker from stopping: after a short grace period (2 s, checked once a
    second) the connection is cut and the broker exits 0, well within 6 s of SIGTERM."""
    slow = clients.raw(broker, V311, rcvbuf=4096)
    slow.connect("c10-slow")
    slow.subscribe("c10/flood", 0)
    pub = clients.connected(broker, "c10-pub", V311)
    payload = b"x" * 65536
    flood = _kernel_send_buffer_max() + (4 << 20)  # kernel buffers plus the broker's own
    for _ in range(flood // len(payload)):
        pub.publish("c10/flood", payload, qos=1)
    assert broker.stop(signal.SIGTERM, timeout=6) == 0


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_paho_client_sees_the_connection_end(broker, clients, version):
    """Real clients (paho) notice the stop at once. (paho 1.6 reads a DISCONNECT's reason
    code only when properties follow, so the 0x8B itself is checked with the raw client.)"""
    client = clients.paho(broker, f"c10-paho-{version}", version)
    assert broker.stop() == 0
    assert client.wait_disconnected() != 0
