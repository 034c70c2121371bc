# SPDX-License-Identifier: Apache-2.0
"""Starts, watches and stops ferrymq processes for the integration tests.

The fixtures in conftest.py are the way tests use this module; it has no pytest imports so
that a helper script can start a broker the same way. Every wait here is bounded and driven
by the broker's own log (a reader thread wakes the waiters on each line), never by a sleep.
"""
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The default bound, in seconds, on every wait: start-up, a log line, a stop. Generous enough
# for the ASan+UBSan build on a loaded 2-core machine; FERRYMQ_TEST_TIMEOUT raises it.
DEFAULT_TIMEOUT = float(os.environ.get("FERRYMQ_TEST_TIMEOUT", "10"))

# How long to wait for a SIGKILLed process to be reaped before giving up on it.
KILL_TIMEOUT = 5.0

# The line Server::start() logs per listener, e.g. "... info  listening on [::1]:43463".
LISTENING_RE = re.compile(
    r"\blistening on (?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^\s:]+)):(?P<port>\d+)\s*$"
)

# Markers of a sanitizer report in the log; any of them fails the test that started the broker.
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: |WARNING: ThreadSanitizer"
)


def ferrymq_binary():
    """The broker under test: $FERRYMQ_BIN (the test runner passes an absolute path), else
    the default build directory of this checkout."""
    return Path(os.environ.get("FERRYMQ_BIN") or REPO_ROOT / "build" / "src" / "ferrymq")


class BrokerError(RuntimeError):
    """A broker did not do what the harness waited for; the message carries its log."""


class BrokerStartError(BrokerError):
    """The broker exited, or did not log all its listening lines, during start-up."""


def run_ferrymq(*args, timeout=DEFAULT_TIMEOUT, cwd=None, binary=None, env=None):
    """Runs ferrymq to completion with `args` and returns the CompletedProcess (text mode,
    stdout and stderr captured). For commands that end by themselves: --help, --version,
    check-config, a run that must fail. A process still running after `timeout` seconds is
    killed by subprocess.run() and subprocess.TimeoutExpired is raised."""
    argv = [str(binary or ferrymq_binary()), *map(str, args)]
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _count_listen_options(args):
    """How many --listen values `args` give: "--listen X" and "--listen=X" count one each,
    and "--listen X Y" (CLI11 takes several values after one flag) counts every value."""
    count = 0
    taking_values = False
    for arg in args:
        if arg == "--listen":
            taking_values = True
        elif arg.startswith("--listen="):
            count += 1
            taking_values = False
        elif taking_values and not arg.startswith("-") and arg not in ("run", "check-config"):
            count += 1
        else:
            taking_values = False
    return count


def _has_option(args, name):
    return any(arg == name or arg.startswith(name + "=") for arg in args)


def _option_value(args, name):
    """The value of the last `name` option in args ("--name X" or "--name=X"), or None."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def _configured_listener_count(config_text):
    """How many listeners a configuration declares (the built-in default has one)."""
    try:
        import yaml  # Debian's python3-yaml; only needed when a test relies on config listeners.
    except ImportError:
        return 1
    try:
        document = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return 1
    if isinstance(document, dict) and isinstance(document.get("listeners"), list):
        return len(document["listeners"])
    return 1


class Broker:
    """One ferrymq process started by start(). Its stderr is read line by line by a thread
    that appends every line to `log_path` and to memory and wakes wait_for_log(); stdout goes
    to `stdout_path`. The object lives until the test ends; the start_broker fixture stops
    the process if the test did not."""

    def __init__(self, argv, *, workdir, data_dir, expected_listeners, env=None):
        self.argv = list(argv)  # the full command line, binary first
        self.workdir = Path(workdir)  # the process's cwd; holds the log files and config
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.expected_listeners = expected_listeners  # "listening on" lines that mean started
        self.log_path = self.workdir / "ferrymq.log"
        self.stdout_path = self.workdir / "ferrymq.stdout"
        self.addresses = []  # [(host, port)] in log order; IPv6 hosts without brackets
        self.returncode = None  # set once the process has been reaped
        # True when the test itself collected the exit status (stop() or wait_for_exit()),
        # so the fixture does not second-guess it.
        self.exit_collected = False
        # Set by a test that expects a sanitizer report or an unclean exit at teardown.
        self.allow_unclean_exit = False

        self._lines = []
        self._eof = False
        self._changed = threading.Condition()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stdout = open(self.stdout_path, "wb")
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            # Its own session: a Ctrl-C at the terminal reaches pytest, whose teardown then
            # stops the broker, instead of racing it.
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._read_stderr, name=f"ferrymq-{self.process.pid}-stderr", daemon=True
        )
        self._reader.start()

    # --- log ------------------------------------------------------------------------------

    def _read_stderr(self):
        with open(self.log_path, "ab") as log_file:
            for raw in iter(self.process.stderr.readline, b""):
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        self.process.stderr.close()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def log_lines(self):
        """Every stderr line so far, without newlines."""
        with self._changed:
            return list(self._lines)

    def log_text(self):
        """Every stderr line so far, as one string."""
        lines = self.log_lines()
        return "\n".join(lines) + ("\n" if lines else "")

    def log_mark(self):
        """The number of lines logged so far, for wait_for_log(since=...)."""
        with self._changed:
            return len(self._lines)

    def wait_for_log(self, pattern, timeout=DEFAULT_TIMEOUT, since=0, count=1):
        """Waits until `count` log lines from line `since` on match `pattern` (a regex
        string or compiled pattern, searched per line) and returns the last re.Match.
        Raises BrokerError when `timeout` seconds pass or the process's stderr closes first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        matches = []
        checked = since
        with self._changed:
            while True:
                for line in self._lines[checked:]:
                    match = regex.search(line)
                    if match:
                        matches.append(match)
                        if len(matches) == count:
                            return match
                checked = max(checked, len(self._lines))
                if self._eof:
                    reason = f"the process exited (status {self.process.poll()})"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f"{timeout}s passed"
                    break
                self._changed.wait(remaining)
        raise BrokerError(
            f"waited for {count} line(s) matching {regex.pattern!r}, found {len(matches)}; "
            f"{reason}\n{self.describe()}"
        )

    def describe(self):
        """The command line and log, for error messages."""
        return f"command: {' '.join(self.argv)}\n--- log ---\n{self.log_text()}--- end of log ---"

    # --- start-up -------------------------------------------------------------------------

    def wait_until_listening(self, timeout=DEFAULT_TIMEOUT):
        """Waits for all expected "listening on" lines and records their addresses."""
        try:
            self.wait_for_log(LISTENING_RE, timeout=timeout, count=self.expected_listeners)
        except BrokerError as e:
            raise BrokerStartError(f"ferrymq did not start: {e}") from None
        self.addresses = []
        for line in self.log_lines():
            match = LISTENING_RE.search(line)
            if match:
                self.addresses.append((match["v6"] or match["v4"], int(match["port"])))
        return self

    @property
    def pid(self):
        return self.process.pid

    @property
    def ports(self):
        """The listening ports in log order (the order of the --listen options)."""
        return [port for _, port in self.addresses]

    @property
    def port(self):
        """The first listener's port."""
        return self.addresses[0][1]

    @property
    def host(self):
        """The first listener's address (IPv6 without brackets)."""
        return self.addresses[0][0]

    def connect(self, index=0, timeout=DEFAULT_TIMEOUT):
        """A TCP socket connected to listener `index`; the caller closes it."""
        host, port = self.addresses[index]
        return socket.create_connection((host, port), timeout=timeout)

    # --- stopping -------------------------------------------------------------------------

    def is_running(self):
        return self.process.poll() is None

    def send_signal(self, sig):
        """Sends `sig` to the broker's PID if it has not been reaped yet."""
        # Popen.send_signal() does nothing once the process is reaped, so a recycled PID is
        # never hit.
        self.process.send_signal(sig)

    def wait_for_exit(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the process to exit by itself and returns its exit status (negative:
        killed by that signal). Raises BrokerError, leaving the process running, on timeout."""
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            message = f"ferrymq still running after {timeout}s\n{self.describe()}"
            raise BrokerError(message) from None
        self._finish()
        self.exit_collected = True
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=DEFAULT_TIMEOUT):
        """Sends `sig` and returns the exit status once the process has exited. If it is
        still running after `timeout` seconds it is SIGKILLed and BrokerError is raised."""
        if self.process.poll() is None:
            self.send_signal(sig)
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BrokerError(
                f"ferrymq did not exit within {timeout}s of {signal.Signals(sig).name}; "
                f"killed it\n{self.describe()}"
            ) from None
        self._finish()
        self.exit_collected = True
        return self.returncode

    def kill(self):
        """SIGKILLs the process (a no-op once it is reaped) and reaps it, bounded."""
        self.process.kill()
        try:
            self.returncode = self.process.wait(KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass  # Unkillable (D state); nothing more a test can do.
        self._finish()
        self.exit_collected = True
        return self.returncode

    def _finish(self):
        # Stderr closes when the process exits, so the reader ends promptly; the bound only
        # matters if a grandchild kept the pipe open.
        self._reader.join(KILL_TIMEOUT)
        if not self._stdout.closed:
            self._stdout.close()

    def sanitizer_report(self):
        """The first log line that looks like a sanitizer report, or None."""
        for line in self.log_lines():
            if SANITIZER_RE.search(line):
                return line
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.is_running():
            try:
                self.stop()
            except BrokerError:
                pass
        return False


def start(
    *args,
    workdir,
    config_text=None,
    data_dir=None,
    listen=None,
    expect_listeners=None,
    wait=True,
    timeout=DEFAULT_TIMEOUT,
    env=None,
    binary=None,
):
    """Starts ferrymq in `workdir` and, when `wait`, waits for its listening lines.

    args: extra command-line words, e.g. "--log-level", "debug" (may start with "run").
    config_text: written to workdir/ferrymq.yaml and passed as -c.
    data_dir: None gives a fresh workdir/data (not created beforehand: ferrymq creates it);
      a path is passed as --data-dir; False passes none, so the config or default decides.
    listen: None adds "--listen 127.0.0.1:0" unless args hold a --listen; a list of
      endpoints adds one --listen each; False adds none, so the config's listeners (which
      need fixed ports) or the default 127.0.0.1:1883 apply.
    expect_listeners: the number of "listening on" lines that mean started; by default
      counted from the --listen options, else from config_text.
    """
    args = [str(a) for a in args]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    extra = []
    if config_text is not None:
        config_path = workdir / "ferrymq.yaml"
        config_path.write_text(config_text)
        extra += ["-c", str(config_path)]
    if listen is None:
        listen = [] if _count_listen_options(args) > 0 else ["127.0.0.1:0"]
    for endpoint in listen or []:
        extra += ["--listen", str(endpoint)]
    if _has_option(args, "--data-dir"):
        data_dir = _option_value(args, "--data-dir")
    elif data_dir is False:
        data_dir = None
    else:
        if data_dir is None:
            data_dir = workdir / "data"
        extra += ["--data-dir", str(data_dir)]
    all_args = args + extra
    if expect_listeners is None:
        expect_listeners = _count_listen_options(all_args)
        if expect_listeners == 0:
            expect_listeners = (
                _configured_listener_count(config_text) if config_text is not None else 1
            )
    argv = [str(binary or ferrymq_binary()), *all_args]
    broker = Broker(
        argv, workdir=workdir, data_dir=data_dir, expected_listeners=expect_listeners, env=env
    )
    if wait:
        broker.wait_until_listening(timeout)
    return broker
