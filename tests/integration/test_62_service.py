# SPDX-License-Identifier: Apache-2.0
"""62 service: what the Debian package and its systemd unit rely on. The service manager's
notifications (READY=1 once listening, STATUS=, WATCHDOG=1 from the loop, STOPPING=1) to a
datagram socket the test binds like systemd does, SIGHUP, journal-style log lines under
$JOURNAL_STREAM, a database from a newer ferrymq refused on a downgrade, and the bash
completion kept in step with --help."""
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

import ferrymq_harness as harness
from mqtt_helpers import RawClient

COMPLETION = harness.REPO_ROOT / "packaging" / "bash-completion" / "ferrymq"


class ServiceManager:
    """The receiving end of NOTIFY_SOCKET: an abstract datagram socket."""

    def __init__(self):
        self.name = f"@ferrymq-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])

    def env(self, **extra):
        env = dict(os.environ, NOTIFY_SOCKET=self.name, **extra)
        env.pop("WATCHDOG_PID", None)
        return env

    def receive(self, timeout=harness.DEFAULT_TIMEOUT):
        """The next notification as a dict of its KEY=VALUE lines, or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def wait_for(self, key, value=None, timeout=harness.DEFAULT_TIMEOUT):
        """Reads notifications until one sets `key` (to `value`, when given)."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            if message is None:
                break
            seen.append(message)
            if key in message and (value is None or message[key] == value):
                return message
        raise AssertionError(f"no {key}={value or '*'} in {seen}")

    def drain(self):
        """Everything already waiting."""
        messages = []
        while (message := self.receive(0.001)) is not None:
            messages.append(message)
        return messages

    def close(self):
        self.sock.close()


@pytest.fixture
def manager():
    m = ServiceManager()
    yield m
    m.close()


def test_ready_status_and_stopping(start_broker, manager):
    broker = start_broker(env=manager.env())
    ready = manager.wait_for("READY", "1")
    assert ready["STATUS"] == "1 listener, 0 clients"
    with RawClient(broker) as client:
        client.connect("status-probe")
        # STATUS= follows on the next one-second tick.
        manager.wait_for("STATUS", "1 listener, 1 client", timeout=5)
    broker.send_signal(signal.SIGTERM)
    manager.wait_for("STOPPING", "1")
    assert broker.wait_for_exit() == 0


def test_watchdog_pings_from_the_loop_and_stop_when_it_is_stuck(start_broker, manager):
    # WATCHDOG_USEC 0.4 s: a ping every 0.2 s.
    broker = start_broker(env=manager.env(WATCHDOG_USEC="400000"))
    manager.wait_for("READY", "1")
    manager.wait_for("WATCHDOG", "1", timeout=2)
    manager.wait_for("WATCHDOG", "1", timeout=2)
    # A stopped process stands for a loop stuck in a callback: the pings stop.
    broker.send_signal(signal.SIGSTOP)
    try:
        manager.drain()
        assert manager.receive(timeout=1.0) is None
    finally:
        broker.send_signal(signal.SIGCONT)
    manager.wait_for("WATCHDOG", "1", timeout=2)


def test_no_watchdog_pings_without_watchdog_usec(start_broker, manager):
    start_broker(env=manager.env())
    manager.wait_for("READY", "1")
    assert manager.receive(timeout=1.0) is None


def test_sighup_requests_a_reload_and_keeps_serving(start_broker):
    broker = start_broker()
    mark = broker.log_mark()
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log(r"received SIGHUP", since=mark)
    assert broker.is_running()
    with RawClient(broker) as client:
        client.connect("after-hup")


def test_journal_stream_gives_priority_prefixes_and_no_timestamps(ferrymq_bin, tmp_path):
    # A run that fails at once (its data dir is a file) writes an info and an error line.
    (tmp_path / "not-a-dir").write_text("")
    log_path = tmp_path / "stderr"
    for journal in (True, False):
        with open(log_path, "wb") as stderr:
            info = os.fstat(stderr.fileno())
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal:
                env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
            result = subprocess.run(
                [str(ferrymq_bin), "--listen", "127.0.0.1:0", "--data-dir",
                 str(tmp_path / "not-a-dir")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                timeout=harness.DEFAULT_TIMEOUT, cwd=tmp_path)
        assert result.returncode == 1
        lines = log_path.read_text().splitlines()
        if journal:
            assert lines[0].startswith("<6>ferrymq "), lines
            assert lines[-1].startswith("<3>cannot use data directory"), lines
        else:
            assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z info  ferrymq ", lines[0]), lines
            assert re.match(r"\S+Z error cannot use data directory", lines[-1]), lines


def test_a_database_from_a_newer_ferrymq_is_refused(run_ferrymq, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "ferrymq.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    result = run_ferrymq("--listen", "127.0.0.1:0", "--data-dir", data)
    assert result.returncode == 1
    assert re.search(r"schema version 99 is newer than this ferrymq knows \(\d+\); use a "
                     r"newer ferrymq or another data_dir", result.stderr), result.stderr
    # The file is left as it was, for the newer ferrymq.
    db = sqlite3.connect(data / "ferrymq.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    db.close()


def help_words(run_ferrymq, *command):
    """The subcommands and long options --help lists for `command`."""
    text = run_ferrymq(*command, "--help").stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) - {"--help"}
    subcommands = set()
    if "Subcommands:" in text:
        for line in text.split("Subcommands:", 1)[1].splitlines()[1:]:
            match = re.match(r"\s+([a-z][a-z-]*)\s", line)
            if match:
                subcommands.add(match.group(1))
    return options, subcommands


def test_bash_completion_knows_every_subcommand_and_option(run_ferrymq):
    text = COMPLETION.read_text()
    options, subcommands = help_words(run_ferrymq)
    assert subcommands == {"run", "check-config", "bench", "passwd"}
    for word in options | subcommands:
        assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text), word
    for sub in subcommands:
        sub_options, _ = help_words(run_ferrymq, sub)
        for word in sub_options:
            assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text), (sub, word)


def test_bash_completion_completes(tmp_path):
    """Runs the completion function in bash, as bash-completion would."""
    script = f"""
source {COMPLETION}
complete_words() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=(); _ferrymq; printf '%s\\n' "${{COMPREPLY[@]}}" | sort | tr '\\n' ' '; echo
}}
complete_words ferrymq ''
complete_words ferrymq bench --scen
complete_words ferrymq bench --scenario ''
complete_words ferrymq --log-level ''
"""
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["bench", "check-config", "passwd", "run"]
    assert lines[1].split() == ["--scenario"]
    assert lines[2].split() == ["connect", "durable", "fanin", "fanout", "idle", "latency"]
    assert lines[3].split() == ["debug", "error", "info", "trace", "warn"]
