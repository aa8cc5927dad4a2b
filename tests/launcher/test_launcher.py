"""The pip-only launcher: XML evaluation, error reporting, and real supervised processes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ros_nodes import launcher as launcher_module
from ros_nodes.launch_xml import LaunchError, parse_substitutions, safe_eval, typed_parameter_value
from ros_nodes.launcher import Launcher, ament_environment

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def probe_prefix(tmp_path_factory) -> Path:
    """A test-only ament prefix with package `launcher_probe` whose lib/ holds the probe node, so
    `<node pkg="launcher_probe" exec="probe_node">` resolves exactly like `ros2 run` would."""
    prefix = tmp_path_factory.mktemp("probe_prefix")
    index = prefix / "share/ament_index/resource_index/packages"
    index.mkdir(parents=True)
    (index / "launcher_probe").touch()
    exe = prefix / "lib/launcher_probe/probe_node"
    exe.parent.mkdir(parents=True)
    script = str(FIXTURES / "probe_node.py")
    exe.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {script!r}\n"
                   "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    exe.chmod(0o755)
    return prefix


@pytest.fixture
def probe_env(probe_prefix, tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(probe_prefix),
                                                            env.get("AMENT_PREFIX_PATH")]))
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    env.pop("UNSET_IN_TESTS", None)
    return env


def load(name: str, env: dict, args: dict | None = None) -> Launcher:
    return Launcher(FIXTURES / name, args or {}, environ=env)


def by_label(launch: Launcher) -> dict:
    return {spec.label: spec for spec in launch.description.processes}


def ros_args(spec) -> list[str]:
    return list(spec.cmd[spec.cmd.index("--ros-args") + 1:])


# ---------------------------------------------------------------- substitutions and values

def test_substitution_parser_nests_and_quotes() -> None:
    parts = parse_substitutions("a$(env X '$(var y)_z')b")
    assert parts[0] == "a" and parts[2] == "b"
    assert parts[1].name == "env" and parts[1].args[1][0].name == "var"
    with pytest.raises(LaunchError, match="unterminated"):
        parse_substitutions("$(var x")


def test_eval_is_safe() -> None:
    assert safe_eval("'arm' == 'arm' and 2 * 3 > 5") == "True"
    assert safe_eval("math.sqrt(16) + max(1, 2)") == "6.0"
    for bad in ("__import__('os')", "open('/etc/passwd')", "(1).__class__", "[x for x in ()]"):
        with pytest.raises(LaunchError):
            safe_eval(bad)


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("true", True), ("False", False),
                                         ("[1, 2]", [1, 2]), ("hello", "hello"), ("", ""),
                                         ("[1, a]", "[1, a]"), ("{a: 1}", "{a: 1}")])
def test_parameter_values_are_typed_like_launch_ros(text, value) -> None:
    assert typed_parameter_value(text) == value


# ---------------------------------------------------------------- evaluation of the fixtures

def test_defaults_groups_namespaces_conditions(probe_env) -> None:
    specs = by_label(load("main.launch.xml", probe_env))
    assert list(specs) == ["top", "in_group", "absolute", "relative", "not_extra", "after_group", "arm_child",
                           "tool"]
    assert ros_args(specs["in_group"]) == ["-r", "__node:=in_group", "-r", "__ns:=/ns_a"]
    assert "__ns:=/abs" in ros_args(specs["absolute"])             # absolute namespace ignores the push
    assert "__ns:=/ns_a/inner/sub" in ros_args(specs["relative"])  # nested pushes compose
    assert "__ns:=/arm" in ros_args(specs["after_group"])          # the group's <let> did not leak
    assert "__ns" not in " ".join(ros_args(specs["top"]))           # no namespace given: none imposed
    assert specs["in_group"].env["GROUP_ONLY"] == "1" and "GROUP_ONLY" not in specs["after_group"].env


def test_argument_overrides_and_choices(probe_env) -> None:
    specs = by_label(load("main.launch.xml", probe_env, {"robot": "rover", "with_extra": "1"}))
    assert "extra" in specs and "not_extra" not in specs
    assert "tool" not in specs  # if="$(eval ...)" is false for rover
    assert specs["top"].cmd[1:3] == ("--flag", "hello_rover")
    with pytest.raises(LaunchError, match=r"main\.launch\.xml:4: argument 'robot' is 'plane'"):
        load("main.launch.xml", probe_env, {"robot": "plane"})


def test_params_files_keep_declaration_order(probe_env) -> None:
    launch = load("main.launch.xml", probe_env, {"use_sim_time": "true"})
    top = by_label(launch)["top"]
    files = [ros_args(top)[i + 1] for i, a in enumerate(ros_args(top)) if a == "--params-file"]
    assert files[1] == str(FIXTURES / "params.yaml")
    first, last = (yaml.safe_load(Path(f).read_text()) for f in (files[0], files[2]))
    assert first == {"/**": {"ros__parameters": {
        "use_sim_time": True, "count": 3, "ratio": 0.5, "label": "hello_arm", "ids": [1, 2, 3],
        "names": ["a", "b"], "nested": {"depth": 2}}}}
    assert last == {"/**": {"ros__parameters": {"rate": 20}}}
    assert ros_args(top)[-2:] == ["-r", "in:=/global_in"]
    assert top.env["NODE_ONLY"] == "arm" and top.env["LAUNCH_TEST_VAR"] == "arm"
    launch.shutdown()
    assert not Path(files[0]).exists()  # temporary parameter files are cleaned up


def test_include_args_env_and_package_share(probe_env) -> None:
    launch = load("main.launch.xml", probe_env)
    specs = by_label(launch)
    child = specs["arm_child"]
    assert ros_args(child) == ["-r", "__node:=arm_child", "-r", "__ns:=/inc"]
    assert child.respawn and child.respawn_delay == 1.5
    assert launch.description.configurations["leaked"] == "yes"  # includes are not scoped, as in launch
    assert specs["tool"].cmd[-1] == "fallback"                     # $(env UNSET default)
    share = Path(specs["tool"].env["SHARE"])
    assert (share / "package.xml").is_file() and (share / "launch").is_dir()


def test_print_shows_command_lines_without_starting(probe_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AMENT_PREFIX_PATH", probe_env["AMENT_PREFIX_PATH"])
    argv = [str(FIXTURES / "main.launch.xml"), "--print", "robot:=rover", "typo:=1"]
    assert launcher_module.main(argv) == 0
    captured = capsys.readouterr()
    assert "__node:=in_group -r __ns:=/ns_a" in captured.out and "hello_rover" in captured.out
    assert "argument 'typo' is not declared" in captured.err


def test_child_environment_defaults(probe_env) -> None:
    probe_env.pop("RMW_IMPLEMENTATION", None)
    env = ament_environment(probe_env)
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    script = ("from ament_index_python.packages import get_package_share_directory as g; "
              "print(g('agent_stack'))")
    share = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           check=True)
    assert (Path(share.stdout.strip()) / "package.xml").samefile(REPO / "package.xml")


# ---------------------------------------------------------------- malformed files

@pytest.mark.parametrize("name, line, message", [
    ("bad_tag.launch.xml", 3, "unknown tag <nod>"),
    ("bad_attribute.launch.xml", 4, "unknown attribute(s) ['nmae']"),
    ("bad_xml.launch.xml", 4, "malformed XML"),
    ("missing_arg.launch.xml", 3, "missing required argument 'required_thing'"),
    ("unknown_package.launch.xml", 2, "package 'no_such_package_xyz' not found"),
    ("include_bad.launch.xml", 3, "unknown tag <nod>"),
])
def test_errors_name_file_and_line(probe_env, name, line, message) -> None:
    with pytest.raises(LaunchError) as error:
        load(name, probe_env)
    text = str(error.value)
    assert message in text
    if name == "include_bad.launch.xml":
        assert f"include_bad.launch.xml:{line}" in text and "bad_tag.launch.xml:3" in text
    else:
        assert text.startswith(f"{FIXTURES / name}:{line}: ")


def test_cli_error_exits_nonzero(capsys) -> None:
    assert launcher_module.main([str(FIXTURES / "bad_tag.launch.xml")]) == 1
    assert "bad_tag.launch.xml:3" in capsys.readouterr().err


# ---------------------------------------------------------------- real processes

def test_api_streams_prefixed_output_and_ends_when_all_exit(probe_env, tmp_path) -> None:
    screen = io.StringIO()
    launch = Launcher(FIXTURES / "echo.launch.xml", ["python:=" + sys.executable, "word:=override"],
                      environ=probe_env, screen=screen, log_dir=tmp_path / "logs")
    with launch:
        assert launch.wait(timeout=15)
    out = screen.getvalue()
    assert "[echo] args=override ECHO_VAR=set_by_launch" in out
    # output="log", launch's default: stdout goes to the log file only, stderr also to the screen
    assert "[quiet] note on stderr" in out and "args=quiet" not in out
    assert "args=quiet" in next(launch.log_dir.glob("quiet.log")).read_text()
    assert launch.returncodes == {"echo": [0], "quiet": [0]}


def test_on_exit_shutdown_escalates_to_sigterm(probe_env) -> None:
    screen = io.StringIO()
    with Launcher(FIXTURES / "shutdown.launch.xml", {"python": sys.executable}, environ=probe_env,
                  screen=screen) as launch:
        assert launch.wait(timeout=10), screen.getvalue()
    assert launch.returncodes == {"stubborn": [-signal.SIGTERM], "timer": [0]}
    assert "[stubborn] stubborn ready" in screen.getvalue()
    assert "sending SIGTERM" in screen.getvalue()


def test_bare_name_found_in_installed_share(tmp_path, probe_env) -> None:
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/agent_stack").touch()
    (prefix / "share/agent_stack/launch").mkdir(parents=True)
    (prefix / "share/agent_stack/launch/demo.launch.xml").write_text(
        '<launch><arg name="x" default="$(find-pkg-share agent_stack)"/></launch>')
    probe_env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), probe_env["AMENT_PREFIX_PATH"]])
    # an installed share dir wins over the source tree
    launch = Launcher("demo.launch.xml", environ=probe_env)
    assert launch.path == prefix / "share/agent_stack/launch/demo.launch.xml"
    assert launch.description.configurations["x"] == str(prefix / "share/agent_stack")
    with pytest.raises(LaunchError, match="nothere.launch.xml: launch file not found"):
        Launcher("nothere.launch.xml", environ=probe_env)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.ros
def test_real_nodes_names_params_respawn_and_sigint(probe_env, tmp_path) -> None:
    command = [sys.executable, "-m", "ros_nodes.launcher", str(FIXTURES / "run.launch.xml"),
               f"record_dir:={tmp_path}"]
    proc = subprocess.Popen(command, env=probe_env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        probe, crasher = tmp_path / "probe.jsonl", tmp_path / "crasher.jsonl"
        started = _wait_for(lambda: _records(probe) and len(_records(crasher)) >= 2, timeout=30)
        assert started, "probe did not start or crasher was not respawned"
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert time.monotonic() - t0 < 8
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    first = _records(probe)[0]
    assert first["fqn"] == "/robot1/probe" and first["chatter"] == "/robot1/talk"
    assert first["params"]["gain"] == 2.5 and first["params"]["from_file"] == "hello"
    assert first["env"] == "from_launch" and first["rmw"] == "rmw_fastrtps_cpp"
    assert (Path(first["share"]) / "package.xml").is_file()
    assert _records(probe)[-1]["event"] == "stop"  # it got SIGINT and shut down cleanly
    assert "[probe] probe ready as /robot1/probe" in out
    assert len({r["pid"] for r in _records(crasher)}) >= 2 and "process has died" in out
    for pid in {r["pid"] for r in _records(probe) + _records(crasher)}:
        assert not _alive(pid), f"child {pid} survived the launcher"


def _alive(pid: int) -> bool:
    """Running and not a zombie (a container's pid 1 may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
