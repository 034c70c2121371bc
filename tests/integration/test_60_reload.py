# SPDX-License-Identifier: Apache-2.0
"""60 hot reload: SIGHUP re-reads the configuration file and applies what changed without
dropping clients. Unchanged bridges stay connected with their queue, changed ones reconnect,
removed ones stop (their queue stays on disk for storage.removed_bridge_retention);
listeners come and go without touching clients on the others; ACL rules reach connected
clients; the log level changes; a configuration that cannot be applied is refused whole and
the running one stays. "check-config --diff" shows the same changes beforehand."""
import signal
import socket

import pytest

from mqtt_helpers import V5, Reason, free_ports
from mqtt_helpers import clients  # noqa: F401 (fixture, used by name)
from test_40_bridge import mosquitto  # noqa: F401 (fixture, used by name)
from test_40_bridge import wait_state


def reload(broker, text):
    """Writes `text` as the broker's configuration file, sends SIGHUP and waits for the
    reload's last line; returns that line's match."""
    (broker.workdir / "ferrymq.yaml").write_text(text)
    mark = broker.log_mark()
    broker.send_signal(signal.SIGHUP)
    return broker.wait_for_log(r"reload (done: \d+ changes?|refused: .*)$", since=mark)


def bridge(name, port, remote):
    return f"""
  - name: {name}
    address: "127.0.0.1:{port}"
    backoff: {{min: 100, max: 500}}
    forward:
      - local: "{name}/#"
        remote: "{remote}/{{#}}"
"""


def config(ports, bridges="", extra=""):
    listeners = "".join(f'  - bind: "127.0.0.1:{p}"\n' for p in ports)
    return f"listeners:\n{listeners}{extra}" + (f"bridges:{bridges}" if bridges else "")


def connections_seen(m, client_id):
    log = (m.workdir / "mosquitto.log").read_text()
    return sum(1 for line in log.splitlines() if "New client connected" in line and
               f" as {client_id} " in line)


def test_bridges_unchanged_stay_changed_reconnect_removed_stop(start_broker, clients,
                                                              mosquitto):  # noqa: F811
    m = mosquitto(extra_config="log_type all")
    (port,) = free_ports(1)
    both = bridge("keep", m.port, "kept") + bridge("edit", m.port, "before")
    b = start_broker(config_text=config([port], both), listen=False, expect_listeners=1)
    wait_state(clients, b, "keep", "online")
    wait_state(clients, b, "edit", "online")
    up = clients.raw(m, V5)
    up.connect("watcher")
    up.subscribe("#", qos=1)

    line = reload(b, config([port], bridge("keep", m.port, "kept") +
                            bridge("edit", m.port, "after")))
    assert line[0] == "reload done: 1 change"
    b.wait_for_log(r"reload: bridge edit: changed \(reconnects, keeps its queue\)")
    wait_state(clients, b, "edit", "online")
    local = clients.connected(b, "pub60", V5)
    local.publish("edit/x", b"edited", qos=1)
    local.publish("keep/x", b"kept", qos=1)
    got = {up.receive().topic for _ in range(2)}
    assert got == {"after/x", "kept/x"}
    # The unchanged bridge kept its one upstream connection; the changed one made a second.
    assert connections_seen(m, "ferrymq-keep") == 1
    assert connections_seen(m, "ferrymq-edit") == 2

    line = reload(b, config([port], bridge("keep", m.port, "kept")))
    assert line[0] == "reload done: 1 change"
    b.wait_for_log(r"bridge edit: removed; its queue is kept for 604800 s")
    # Nothing is queued for a removed bridge any more, and nothing goes up.
    local.publish("edit/y", b"nobody", qos=1)
    local.publish("keep/y", b"still", qos=1)
    msg = up.receive()
    assert (msg.topic, msg.payload) == ("kept/y", b"still")
    assert connections_seen(m, "ferrymq-keep") == 1


def test_listeners_added_and_removed_without_dropping_clients(start_broker, clients):
    first, second, third = free_ports(3)
    b = start_broker(config_text=config([first, second]), listen=False, expect_listeners=2)
    on_second = clients.connected(b, "on-second", V5)  # listener 0 is `first`
    on_second.subscribe("reload/#", qos=1)
    stays = clients.raw(b, V5, index=1)
    stays.connect("stays")

    mark = b.log_mark()
    line = reload(b, config([first, third]))
    assert line[0] == "reload done: 2 changes"
    b.wait_for_log(rf"listening on 127\.0\.0\.1:{third}", since=mark)
    b.wait_for_log(rf"reload: listener 127\.0\.0\.1:{second}: removed", since=mark)
    with socket.create_connection(("127.0.0.1", third), timeout=5):
        pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", second), timeout=5).close()
    # The client on the removed listener is still connected and served.
    stays.publish("reload/a", b"from a removed listener", qos=1)
    assert on_second.receive().payload == b"from a removed listener"


def test_acl_change_reaches_connected_clients(start_broker, clients):
    (port,) = free_ports(1)
    open_acl = 'acl:\n  - topic: "#"\n'
    b = start_broker(config_text=config([port], extra=open_acl), listen=False,
                     expect_listeners=1)
    c = clients.connected(b, "acl60", V5)
    assert c.subscribe("secret/a", qos=1).reasons == [1]
    line = reload(b, config([port], extra='acl:\n  - topic: "public/#"\n'))
    assert line[0] == "reload done: 1 change"
    assert c.subscribe("secret/b", qos=1).reasons == [Reason.NOT_AUTHORIZED]
    assert c.subscribe("public/b", qos=1).reasons == [1]


def test_log_level_and_limits_change(start_broker, clients):
    (port,) = free_ports(1)
    b = start_broker(config_text=config([port]), listen=False, expect_listeners=1)
    mark = b.log_mark()
    line = reload(b, config([port], extra="log:\n  level: debug\nlimits:\n  max_qos: 1\n"))
    assert line[0] == "reload done: 2 changes"
    c = clients.raw(b, V5)
    ack = c.connect("after-reload")
    assert ack.properties.get(0x24) == 1  # Maximum QoS in CONNACK [MQTT-3.2.2-9]
    b.wait_for_log(r"debug .*after-reload", since=mark)


def test_invalid_configuration_is_refused_and_the_running_one_stays(start_broker, clients,
                                                                   tmp_path):
    (port,) = free_ports(1)
    good = config([port])
    b = start_broker(config_text=good, listen=False, expect_listeners=1)
    for bad, why in [
        ("listeners: [\n", r"reload refused: .*ferrymq\.yaml:\d+:\d+"),
        (good + "limits:\n  max_qos: 7\n", r"reload refused: .*max_qos must be between 0 and 2"),
        (good + f'authentication:\n  password_file: "{tmp_path}/missing"\n',
         r"reload refused: the password file cannot be used"),
    ]:
        line = reload(b, bad)
        assert line[0].startswith("reload refused"), line[0]
        b.wait_for_log(why)
        assert clients.connected(b, f"still-{len(why)}", V5) is not None
    assert b.is_running()


def test_check_config_diff_shows_what_a_reload_would_change(start_broker, run_ferrymq, tmp_path):
    first, second = free_ports(2)
    data = tmp_path / "data60"
    text = config([first]) + f'data_dir: "{data}"\n'
    b = start_broker(config_text=text, listen=False, data_dir=False, expect_listeners=1)
    assert (data / "config.applied.yaml").read_text() == text
    edited = tmp_path / "edited.yaml"
    edited.write_text(config([first, second], extra='acl:\n  - topic: "#"\n') +
                      f'data_dir: "{data}"\nstorage:\n  durability: power\n')
    r = run_ferrymq("check-config", "--diff", str(edited))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"listener 127.0.0.1:{second}: added" in lines
    assert "acl: changed (0 -> 1 rules, applied to connected clients too)" in lines
    assert "storage: changed (needs a restart: a reload keeps the old value)" in lines
    assert lines[-1].endswith("ok, 3 changes from " + str(data / "config.applied.yaml"))
    assert b.is_running()
