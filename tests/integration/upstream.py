# SPDX-License-Identifier: Apache-2.0
"""A real upstream broker for bridge tests (Mosquitto from Debian, on a free loopback port)
and a TCP proxy between ferrymq and it that a test can cut or stall to make link faults.
Both are stopped by the fixtures that start them; processes are ended by PID only."""
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from mqtt_helpers import free_ports

START_TIMEOUT = 10


def _wait_port(port, timeout=START_TIMEOUT, process=None, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


class Mosquitto:
    """One Mosquitto process. `addresses` and connect() let RawClient talk to it like to a
    ferrymq Broker from the harness."""

    def __init__(self, workdir, port=None, extra_config="", persistent=False, host="127.0.0.1",
                 prefix=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_ports(1)[0]
        self.extra_config = extra_config
        self.persistent = persistent  # keep sessions across a stop (SIGTERM) and start
        self.process = None
        self.host = host      # the address it listens on
        self.prefix = prefix  # e.g. ("ip", "netns", "exec", NAME): run it in a namespace
        self.addresses = [(host, self.port)]

    def start(self):
        conf = self.workdir / "mosquitto.conf"
        # As root Mosquitto would switch to its own user, which cannot read files in the
        # test's private directory (an ACL file): it stays the user that started it.
        user = "user root\n" if os.geteuid() == 0 else ""
        # No per-client queue limit: a test's subscriber reads in bursts, and Mosquitto would
        # otherwise drop what a bridge delivers meanwhile (1,000 by default).
        persistence = (f"persistence true\npersistence_location {self.workdir}/\n"
                       if self.persistent else "persistence false\n")
        conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\n"
                        f"{persistence}max_queued_messages 0\n{user}"
                        f"{self.extra_config}\n")
        log = open(self.workdir / "mosquitto.log", "ab")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        # "ip netns exec" execs the command, so the PID is Mosquitto's own.
        self.process = subprocess.Popen([*self.prefix, binary, "-c", str(conf)], stdout=log,
                                        stderr=log, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        log.close()
        _wait_port(self.port, process=self.process, host=self.host)
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(START_TIMEOUT)

    def connect(self, index=0, timeout=10):
        return socket.create_connection(self.addresses[index], timeout=timeout)


class TcpProxy:
    """Forwards every connection on its own free port to `target_port`. cut() closes what
    is open and closes new connections at once until restore(); stall() keeps connections
    open but stops moving bytes (a half-open link) until unstall(). The listening socket
    stays bound throughout: a port given back to the system could be taken meanwhile."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_ports(1)[0]
        self._lock = threading.Lock()
        self._pairs = []
        self._listener = None
        self._stalled = False
        self._refusing = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._wake_r, self._wake_w = socket.socketpair()
        self.connections = 0  # accepted so far

    def start(self):
        self._listen()
        self._thread.start()
        return self

    def _listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.setblocking(False)
        with self._lock:
            self._listener = s
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run(self):
        while not self._stop:
            with self._lock:
                listener = self._listener
                pairs = list(self._pairs)
                stalled = self._stalled
            readable = [self._wake_r] + ([listener] if listener else [])
            if not stalled:
                for a, b in pairs:
                    readable += [a, b]
            try:
                ready, _, _ = select.select(readable, [], [], 0.5)
            except (OSError, ValueError):
                continue
            for s in ready:
                if s is self._wake_r:
                    self._wake_r.recv(4096)
                elif s is listener:
                    self._accept(listener)
                else:
                    self._pump(s, pairs)

    def _accept(self, listener):
        try:
            client, _ = listener.accept()
        except OSError:
            return
        with self._lock:
            refusing = self._refusing
        if refusing:
            client.close()
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, server))
            self.connections += 1

    def _pump(self, s, pairs):
        for a, b in pairs:
            if s is a or s is b:
                other = b if s is a else a
                try:
                    data = s.recv(65536)
                    if data:
                        other.sendall(data)
                        return
                except OSError:
                    pass
                self._close_pair((a, b))
                return

    def _close_pair(self, pair):
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for s in pair:
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        """The link goes down: open connections are closed, new ones closed at once."""
        with self._lock:
            self._refusing = True
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self._wake()

    def restore(self):
        with self._lock:
            self._refusing = False
        self._wake()

    def stall(self):
        with self._lock:
            self._stalled = True
        self._wake()

    def unstall(self):
        with self._lock:
            self._stalled = False
        self._wake()

    def close(self):
        self._stop = True
        self.cut()
        self._wake()
        self._thread.join(5)
        with self._lock:
            listener, self._listener = self._listener, None
        if listener:
            listener.close()
        self._wake_r.close()
        self._wake_w.close()


class NetNamespace:
    """A network namespace joined to this one by a veth pair: HOST_IP here, NS_IP inside.
    down() sets the link down on this side, so packets vanish without a reset (a half-open
    link). Needs root; delete() removes what create() made."""

    def __init__(self, index):
        tag = f"{os.getpid() % 10000}{index}"
        self.name = f"fmq{tag}"
        self.host_if = f"fmqh{tag}"
        self.ns_if = f"fmqn{tag}"
        subnet = 200 + (os.getpid() + index) % 50
        self.host_ip = f"10.253.{subnet}.1"
        self.ns_ip = f"10.253.{subnet}.2"
        self.prefix = ("ip", "netns", "exec", self.name)

    def _ip(self, *args, ns=False, check=True):
        cmd = (["ip", "netns", "exec", self.name] if ns else []) + ["ip", *args]
        subprocess.run(cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def create(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.name)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, ns=True)
        self._ip("link", "set", self.ns_if, "up", ns=True)
        self._ip("link", "set", "lo", "up", ns=True)
        return self

    def down(self):
        self._ip("link", "set", self.host_if, "down")

    def up(self):
        self._ip("link", "set", self.host_if, "up")

    def delete(self):
        self._ip("link", "del", self.host_if, check=False)
        subprocess.run(["ip", "netns", "del", self.name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
