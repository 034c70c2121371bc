# SPDX-License-Identifier: Apache-2.0
"""01 cli: the command line (src/main.cpp), configuration errors as the user sees them
(src/config/config.cpp), and the start-up and shutdown of a broker (src/app/server.cpp)."""
import errno
import re
import signal
import socket

import pytest

import ferrymq_harness as harness

SHIPPED_CONFIG = harness.REPO_ROOT / "configs" / "ferrymq.yaml"


def project_version():
    """The version in meson.build, which the binary reports as FERRYMQ_VERSION."""
    text = (harness.REPO_ROOT / "meson.build").read_text()
    return re.search(r"version\s*:\s*'([^']+)'", text).group(1)


def assert_config_error(stderr, path, line, column, message):
    """Checks that stderr holds exactly one line "PATH:LINE:COL: MESSAGE..."."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    expected = rf"^{re.escape(str(path))}:{line}:{column}: {message}"
    assert re.match(expected, lines[0]), f"{lines[0]!r} does not match {expected!r}"


def ipv6_loopback_usable():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- --help and --version ----------------------------------------------------------------


def test_help_lists_subcommands_and_options(run_ferrymq):
    result = run_ferrymq("--help")
    assert result.returncode == 0, result.stderr
    for word in ("run", "check-config", "-c,--config", "--listen", "--data-dir", "--log-level",
                 "--version", "--help"):
        pattern = rf"(^|[\s,]){re.escape(word)}\b"
        assert re.search(pattern, result.stdout), f"{word}:\n{result.stdout}"


def test_run_help_lists_run_options(run_ferrymq):
    result = run_ferrymq("run", "--help")
    assert result.returncode == 0, result.stderr
    for word in ("--config", "--listen", "--data-dir", "--log-level"):
        assert word in result.stdout, f"{word}:\n{result.stdout}"


def test_version(run_ferrymq):
    result = run_ferrymq("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ferrymq {project_version()}\n"


# --- check-config ------------------------------------------------------------------------


def test_check_config_accepts_shipped_config(run_ferrymq):
    result = run_ferrymq("check-config", SHIPPED_CONFIG)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{SHIPPED_CONFIG}: ok\n"
    assert result.stderr == ""


def test_check_config_accepts_empty_file(run_ferrymq, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    result = run_ferrymq("check-config", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok\n"


# Each case: (name, file text, line, column, start of the message). The positions of YAML
# syntax errors are where yaml-cpp notices them, which is also where PyYAML points.
BROKEN_CONFIGS = [
    ("top_level_key_typo",
     "# ferrymq test configuration\n"
     "data_dir: /tmp/x\n"
     "listners:\n"
     "  - bind: \"127.0.0.1:1883\"\n",
     3, 1, r"unknown key 'listners' in top level; expected one of: listeners,"),
    ("nested_key_typo",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "    allow_anonymus: true\n",
     3, 5, r"unknown key 'allow_anonymus' in listeners\[0\]"),
    ("log_level_key_typo",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "data_dir: /tmp/x\n"
     "log:\n"
     "  levle: info\n",
     5, 3, r"unknown key 'levle' in log; expected one of: level"),
    ("integer_is_a_word",
     "# comment\n"
     "limits:\n"
     "  max_connections: lots\n",
     3, 20, r"limits\.max_connections must be an integer, got 'lots'"),
    ("integer_out_of_range",
     "log:\n"
     "  level: info\n"
     "limits:\n"
     "  max_packet_size: 1024\n"
     "  max_connections: -5\n",
     5, 20, r"limits\.max_connections must be between 1 and 4294967295"),
    ("boolean_is_a_word",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "    allow_anonymous: maybe\n",
     3, 22, r"listeners\[0\]\.allow_anonymous must be true or false, got 'maybe'"),
    ("string_is_a_list",
     "data_dir: [a, b]\n",
     1, 11, r"data_dir must be a string, got a list"),
    ("listeners_is_a_mapping",
     "listeners: {bind: 1}\n",
     1, 12, r"listeners must be a list"),
    ("log_level_unknown",
     "log:\n"
     "  level: loud\n",
     2, 10, r"unknown log level 'loud'"),
    ("bind_host_not_numeric",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "  - bind: \"localhost:1883\"\n",
     3, 11, r"listeners\[1\]\.bind host 'localhost' must be a numeric IPv4 or IPv6 address"),
    ("bind_port_too_large",
     "listeners:\n"
     "  - bind: \"127.0.0.1:70000\"\n",
     2, 11, r"listeners\[0\]\.bind '127\.0\.0\.1:70000' is not HOST:PORT .*larger than 65535"),
    ("bind_port_missing",
     "listeners:\n"
     "  - bind: 127.0.0.1\n",
     2, 11, r"listeners\[0\]\.bind '127\.0\.0\.1' is not HOST:PORT .*missing ':PORT'"),
    ("bind_ipv6_without_brackets",
     "listeners:\n"
     "  - bind: \"::1:1883\"\n",
     2, 11, r"listeners\[0\]\.bind '::1:1883' is not HOST:PORT .*must be in brackets"),
    ("bind_port_zero",
     "listeners:\n"
     "  - bind: \"127.0.0.1:0\"\n",
     2, 11, r"listeners\[0\]\.bind port must be between 1 and 65535, got 0"),
    ("bind_duplicate",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "  - bind: \"127.0.0.1:1883\"\n",
     3, 11, r"duplicate bind '127\.0\.0\.1:1883', already used by listeners\[0\] on line 2"),
    ("bind_missing",
     "listeners:\n"
     "  - allow_anonymous: true\n",
     2, 5, r"listeners\[0\] needs a 'bind: HOST:PORT' key"),
    ("yaml_mapping_value_not_allowed",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "log:\n"
     "  level: info: debug\n",
     4, 14, r"illegal map value"),
    ("yaml_bad_indentation",
     "log:\n"
     "  level: info\n"
     " level2: x\n",
     3, 2, r"end of map not found"),
    ("yaml_list_item_in_mapping",
     "data_dir: /tmp/x\n"
     "log:\n"
     "  level: info\n"
     "  - debug\n",
     4, 3, r"end of map not found"),
    ("yaml_unclosed_flow_mapping",
     "listeners:\n"
     "  - bind: \"127.0.0.1:1883\"\n"
     "log: {level: info\n"
     "limits:\n"
     "  max_connections: 5\n",
     4, 7, r"end of map flow not found"),
    ("yaml_two_documents",
     "log:\n"
     "  level: info\n"
     "---\n"
     "log:\n"
     "  level: debug\n",
     4, 1, r"expected one YAML document, found a second one"),
]


@pytest.mark.parametrize(
    "text,line,column,message", [case[1:] for case in BROKEN_CONFIGS],
    ids=[case[0] for case in BROKEN_CONFIGS],
)
def test_check_config_reports_file_line_column(run_ferrymq, tmp_path, text, line, column,
                                               message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    result = run_ferrymq("check-config", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert_config_error(result.stderr, path, line, column, message)


def test_check_config_keeps_the_path_as_given(run_ferrymq, tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "broken.yaml").write_text("log:\n  level: loud\n")
    result = run_ferrymq("check-config", "conf.d/broken.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert_config_error(result.stderr, "conf.d/broken.yaml", 2, 10, "unknown log level")


def test_check_config_duplicate_key_names_the_first_line(run_ferrymq, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("log:\n  level: info\nlog:\n  level: debug\n")
    result = run_ferrymq("check-config", path)
    assert result.returncode == 1
    assert_config_error(result.stderr, path, 3, 1,
                        r"duplicate key 'log' in top level \(first on line 1\)")


def test_check_config_missing_file(run_ferrymq, tmp_path):
    path = tmp_path / "absent.yaml"
    result = run_ferrymq("check-config", path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}: cannot read: No such file or directory"), \
        result.stderr


def test_check_config_needs_a_file(run_ferrymq):
    result = run_ferrymq("check-config")
    assert result.returncode != 0
    assert "FILE" in result.stderr


def test_check_config_refuses_run_options(run_ferrymq):
    result = run_ferrymq("--listen", "127.0.0.1:0", "check-config", SHIPPED_CONFIG)
    assert result.returncode != 0
    assert "--listen" in result.stderr
    assert "ok" not in result.stdout


# --- run with a broken configuration -----------------------------------------------------


@pytest.mark.parametrize("subcommand", [[], ["run"]], ids=["default", "run"])
def test_run_with_broken_config_exits_1(run_ferrymq, tmp_path, subcommand):
    (tmp_path / "broken.yaml").write_text(
        "listeners:\n"
        "  - bind: \"127.0.0.1:1883\"\n"
        "limits:\n"
        "  max_conections: 10\n"
    )
    data_dir = tmp_path / "data"
    result = run_ferrymq(*subcommand, "-c", "broken.yaml", "--listen", "127.0.0.1:0",
                         "--data-dir", data_dir, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "no error message"
    assert re.match(r"^broken\.yaml:4:3: unknown key 'max_conections' in limits", lines[0]), \
        result.stderr
    assert "listening on" not in result.stderr
    assert not data_dir.exists(), "the data dir was created although the config is broken"


def test_run_with_missing_config_exits_1(run_ferrymq, tmp_path):
    result = run_ferrymq("run", "-c", tmp_path / "absent.yaml", "--listen", "127.0.0.1:0",
                         "--data-dir", tmp_path / "data")
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.yaml'}: cannot read" in result.stderr


# --- run: start, accept, stop ------------------------------------------------------------


def test_broker_fixture_is_listening(broker):
    assert broker.is_running()
    assert broker.pid > 0
    assert broker.host == "127.0.0.1"
    assert 0 < broker.port < 65536
    assert broker.ports == [broker.port]
    broker.wait_for_log(rf"listening on 127\.0\.0\.1:{broker.port}$", timeout=1)
    with broker.connect():
        pass


@pytest.mark.parametrize("subcommand", [[], ["run"]], ids=["default", "run"])
def test_run_creates_nested_data_dir_and_stops_on_sigterm(start_broker, tmp_path, subcommand):
    data_dir = tmp_path / "state" / "deeper" / "ferrymq"
    assert not data_dir.parent.parent.exists()
    broker = start_broker(*subcommand, data_dir=data_dir)
    assert data_dir.is_dir()
    assert re.search(r"^\S+Z info  listening on 127\.0\.0\.1:\d+$", broker.log_text(), re.M), \
        broker.log_text()
    assert broker.port != 0
    with broker.connect() as client:
        assert client.getpeername()[1] == broker.port
    mark = broker.log_mark()
    assert broker.stop(signal.SIGTERM) == 0
    broker.wait_for_log(r"received SIGTERM, stopping", timeout=0, since=mark)
    broker.wait_for_log(r"\bstopped\b", timeout=0, since=mark)


def test_run_stops_on_sigint(start_broker):
    broker = start_broker()
    with broker.connect():
        pass
    assert broker.stop(signal.SIGINT) == 0
    broker.wait_for_log(r"received SIGINT, stopping", timeout=0)
    broker.wait_for_log(r"\bstopped\b", timeout=0)


def test_run_with_shipped_config_and_overrides(start_broker):
    # The shipped config binds 127.0.0.1:1883 and /var/lib/ferrymq; --listen and --data-dir
    # replace both, so the test needs neither a fixed port nor root.
    broker = start_broker("-c", SHIPPED_CONFIG)
    assert broker.data_dir.is_dir()
    broker.wait_for_log(rf"starting \(config: {re.escape(str(SHIPPED_CONFIG))}\)", timeout=0)
    assert broker.stop() == 0


def test_two_listeners_ipv4_and_ipv6(start_broker):
    if not ipv6_loopback_usable():
        pytest.skip("no IPv6 loopback")
    broker = start_broker("--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    listening = [line for line in broker.log_lines() if "listening on" in line]
    assert len(listening) == 2, broker.log_text()
    assert re.search(r"listening on 127\.0\.0\.1:\d+$", listening[0])
    assert re.search(r"listening on \[::1\]:\d+$", listening[1])
    assert [host for host, _ in broker.addresses] == ["127.0.0.1", "::1"]
    for index in range(2):
        with broker.connect(index):
            pass
    assert broker.stop() == 0


def test_two_ipv4_listeners(start_broker):
    broker = start_broker("--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0")
    assert len(broker.ports) == 2 and broker.ports[0] != broker.ports[1], broker.log_text()
    for index in range(2):
        with broker.connect(index):
            pass
    assert broker.stop() == 0


@pytest.mark.parametrize(
    "endpoint,why",
    [
        ("nope", "missing ':PORT'"),
        ("127.0.0.1", "missing ':PORT'"),
        ("127.0.0.1:", "the port must be a decimal number"),
        ("127.0.0.1:http", "the port must be a decimal number"),
        ("127.0.0.1:65536", "larger than 65535"),
        ("localhost:1883", "not a numeric IPv4 or IPv6 address"),
        ("::1:1883", "must be in brackets"),
        ("[::1]1883", "missing ':PORT'"),
        ("[127.0.0.1]:1883", "brackets are only for IPv6"),
        (":1883", "empty host"),
    ],
)
def test_listen_rejects_bad_endpoint(run_ferrymq, tmp_path, endpoint, why):
    result = run_ferrymq("--listen", endpoint, "--data-dir", tmp_path / "data")
    assert result.returncode != 0
    assert "--listen" in result.stderr and why in result.stderr, result.stderr
    assert "listening on" not in result.stderr


def test_listen_on_port_in_use_exits_1(run_ferrymq, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_ferrymq("--listen", f"127.0.0.1:{port}", "--data-dir", tmp_path / "data")
    assert result.returncode == 1, result.stderr
    assert re.search(rf"cannot listen on 127\.0\.0\.1:{port}: {errno.errorcode[errno.EADDRINUSE]}",
                     result.stderr), result.stderr
    assert "listening on" not in result.stderr


def test_second_listener_in_use_closes_the_first(start_broker):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        broker = start_broker("--listen", "127.0.0.1:0", "--listen", f"127.0.0.1:{port}",
                              wait=False)
        assert broker.wait_for_exit() == 1, broker.log_text()
    assert "EADDRINUSE" in broker.log_text()


@pytest.mark.parametrize("inside", [False, True], ids=["is_a_file", "under_a_file"])
def test_data_dir_that_is_a_file_exits_1(start_broker, tmp_path, inside):
    regular = tmp_path / "not-a-dir"
    regular.write_text("x")
    broker = start_broker(data_dir=regular / "sub" if inside else regular, wait=False)
    assert broker.wait_for_exit() == 1, broker.log_text()
    broker.wait_for_log(rf"cannot use data directory .*{re.escape(str(regular))} exists and is "
                        r"not a directory", timeout=0)
    assert "listening on" not in broker.log_text()
    assert regular.read_text() == "x"


def test_start_broker_reports_early_exit(start_broker, tmp_path):
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(harness.BrokerStartError, match="exited") as raised:
        start_broker(data_dir=regular, timeout=30)
    assert raised.value.broker.returncode == 1 or raised.value.broker.wait_for_exit() == 1


def test_data_dir_empty_is_refused(run_ferrymq):
    result = run_ferrymq("--listen", "127.0.0.1:0", "--data-dir", "")
    assert result.returncode != 0
    assert "--data-dir" in result.stderr


def test_log_level_bogus_is_refused(run_ferrymq, tmp_path):
    result = run_ferrymq("--listen", "127.0.0.1:0", "--data-dir", tmp_path / "data",
                         "--log-level", "bogus")
    assert result.returncode != 0
    assert "--log-level" in result.stderr and "bogus" in result.stderr, result.stderr
    assert "listening on" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_log_level_debug_shows_data_dir(start_broker):
    broker = start_broker("--log-level", "debug")
    broker.wait_for_log(rf"debug data directory: {re.escape(str(broker.data_dir))}$", timeout=0)


def test_harness_kills_a_broker_that_ignores_sigterm(start_broker):
    broker = start_broker()
    broker.send_signal(signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    with pytest.raises(harness.BrokerError, match="did not exit within 1s of SIGTERM"):
        broker.stop(signal.SIGTERM, timeout=1)
    assert not broker.is_running()
    assert broker.returncode == -signal.SIGKILL


def test_harness_restart_keeps_the_data_dir(start_broker):
    first = start_broker("--log-level", "debug")
    second = start_broker.restart(first)
    assert first.returncode == 0
    assert second.data_dir == first.data_dir
    assert second.pid != first.pid
    second.wait_for_log(rf"data directory: {re.escape(str(first.data_dir))}$", timeout=0)
    with second.connect():
        pass
