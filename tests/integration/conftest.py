# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every integration test; the process handling is in ferrymq_harness.py.

- ferrymq_bin: the path of the binary under test ($FERRYMQ_BIN or build/src/ferrymq).
- run_ferrymq(*args, timeout=10): runs ferrymq to completion in tmp_path, returns the
  subprocess.CompletedProcess (text, stdout/stderr captured).
- start_broker(*args, config_text=None, data_dir=None, ...): starts a broker on
  127.0.0.1:0 with a fresh data dir and returns a ferrymq_harness.Broker once it logs all
  its "listening on" lines. Everything it started is stopped when the test ends.
  start_broker.restart(broker) stops a broker and starts it again on the same data dir.
- broker: one default broker, already listening.
"""
import signal

import pytest

import ferrymq_harness as harness


@pytest.fixture(scope="session")
def ferrymq_bin():
    binary = harness.ferrymq_binary()
    if not binary.is_file():
        pytest.fail(f"{binary} does not exist: build it (ninja -C build) or set FERRYMQ_BIN")
    return binary


@pytest.fixture
def run_ferrymq(ferrymq_bin, tmp_path):
    """Runs ferrymq in tmp_path, so a run with the default data dir cannot touch the tree."""

    def run(*args, timeout=harness.DEFAULT_TIMEOUT, cwd=None, env=None):
        return harness.run_ferrymq(
            *args, timeout=timeout, cwd=cwd or tmp_path, env=env, binary=ferrymq_bin
        )

    return run


class BrokerFactory:
    """The start_broker fixture's value: starts brokers, each in its own directory under
    the test's tmp_path, and remembers them so that teardown can stop every one."""

    def __init__(self, binary, tmp_path):
        self.binary = binary
        self.tmp_path = tmp_path
        self.brokers = []

    def __call__(self, *args, config_text=None, data_dir=None, listen=None,
                 expect_listeners=None, wait=True, timeout=harness.DEFAULT_TIMEOUT, env=None):
        """Starts ferrymq; see ferrymq_harness.start() for the arguments. With wait=False it
        returns at once (for a broker expected to fail: call wait_for_exit()). Raises
        BrokerStartError if the broker exits or stays silent during start-up."""
        workdir = self.tmp_path / f"broker{len(self.brokers) + 1}"
        broker = harness.start(
            *args,
            workdir=workdir,
            config_text=config_text,
            data_dir=data_dir,
            listen=listen,
            expect_listeners=expect_listeners,
            wait=False,
            env=env,
            binary=self.binary,
        )
        # Registered before the wait, so a broker that hangs in start-up is still stopped.
        self.brokers.append(broker)
        broker.start_request = (args, dict(config_text=config_text, listen=listen,
                                           expect_listeners=expect_listeners, env=env))
        if wait:
            try:
                broker.wait_until_listening(timeout)
            except harness.BrokerStartError as e:
                # The exception already tells the test; teardown need not repeat the exit
                # status. A broker that hangs instead of exiting is still stopped there.
                broker.exit_collected = True
                e.broker = broker
                raise
        return broker

    def restart(self, broker, sig=signal.SIGTERM, wait=True, timeout=harness.DEFAULT_TIMEOUT):
        """Stops `broker` with `sig` (if it still runs) and starts a new one with the same
        arguments and data dir, e.g. to check what survives a restart. The new broker gets
        new ports (port 0 again). Returns the new Broker; the old one's exit status is in
        its .returncode."""
        if broker.is_running():
            broker.stop(sig, timeout=timeout)
        args, options = broker.start_request
        data_dir = broker.data_dir if broker.data_dir is not None else False
        return self(*args, data_dir=data_dir, wait=wait, timeout=timeout, **options)

    def stop_all(self):
        """Stops every broker still running (SIGTERM, a bounded wait, then SIGKILL) and
        returns the problems found: a broker that needed SIGKILL, exited non-zero when the
        fixture stopped it, or logged a sanitizer report."""
        problems = []
        for broker in self.brokers:
            stopped_here = broker.is_running() or not broker.exit_collected
            try:
                code = broker.stop(signal.SIGTERM)
            except harness.BrokerError as e:
                problems.append(str(e))
                continue
            finally:
                if broker.is_running():
                    broker.kill()
            if broker.allow_unclean_exit:
                continue
            if stopped_here and code != 0:
                problems.append(f"ferrymq exited with {code} on SIGTERM\n{broker.describe()}")
            report = broker.sanitizer_report()
            if report:
                problems.append(f"sanitizer report: {report}\n{broker.describe()}")
        return problems


@pytest.fixture
def start_broker(ferrymq_bin, tmp_path):
    factory = BrokerFactory(ferrymq_bin, tmp_path)
    yield factory
    problems = factory.stop_all()
    for broker in factory.brokers:
        # Shown by pytest only when the test fails.
        print(f"broker pid {broker.pid}: {broker.describe()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def broker(start_broker):
    """A broker with the defaults: one listener on 127.0.0.1, a fresh data dir."""
    return start_broker()
