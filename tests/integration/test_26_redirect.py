# SPDX-License-Identifier: Apache-2.0
"""26 server redirection (MQTT 5.0, spec 4.11): with `redirect.server_reference` set, every
CONNECT is refused with 0x9C Use another server (0x9D Server moved when permanent) and the
Server Reference; 3.1.1 clients get return code 3 (server unavailable)."""
import pytest

from mqtt_helpers import CONNACK, V311, V5, Prop, connect_packet
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)

USE_ANOTHER_SERVER = 0x9C
SERVER_MOVED = 0x9D


@pytest.mark.parametrize("permanent,reason", [(False, USE_ANOTHER_SERVER),
                                              (True, SERVER_MOVED)],
                         ids=["temporary-0x9c", "permanent-0x9d"])
def test_v5_client_is_redirected_MQTT_4_11(start_broker, clients, permanent, reason):
    b = start_broker(config_text=f"""
redirect:
  server_reference: "gw2.example.net:1883"
  permanent: {str(permanent).lower()}
""")
    c = clients.raw(b, V5)
    c.send(connect_packet("c26", V5))
    packets = c.expect_closed()
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, reason)], packets
    assert packets[0].properties[Prop.SERVER_REFERENCE] == "gw2.example.net:1883"


def test_v311_client_gets_server_unavailable(start_broker, clients):
    b = start_broker(config_text='redirect:\n  server_reference: "gw2.example.net:1883"\n')
    c = clients.raw(b, V311)
    c.send(connect_packet("c26-3", V311))
    packets = c.expect_closed()
    assert [p.raw for p in packets] == [b"\x20\x02\x00\x03"], packets


def test_no_redirection_by_default(broker, clients):
    """Without a server reference clients connect normally."""
    c = clients.raw(broker, V5)
    assert c.connect("c26-ok").reason == 0
