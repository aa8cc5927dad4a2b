"""`agent-stack launch FILE name:=value ...`: run a ROS 2 XML launch file without the `launch` package.

The file is evaluated up front by `ros_nodes.launch_xml` (any error stops here, before a process
starts); then each <node>/<executable> runs as its own process, supervised like `ros2 launch` does:
output prefixed with `[name]`, `respawn`, and on SIGINT/SIGTERM a SIGINT to every child, then
SIGTERM, then SIGKILL after the per-process timeouts.

Python API:

    with Launcher("sim.launch.xml", {"use_sim_time": "true"}) as launch:
        launch.wait(timeout=10)        # True once every process has exited
    # leaving the block shuts the processes down

Children get an environment in which `ament_index_python` finds `agent_stack` even under
`pip install -e .` (editable installs do not install data_files; see `agent_stack_prefix()`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import yaml

from ros_nodes.launch_xml import (LaunchDescription, LaunchError, ProcessSpec, find_package_prefix,
                                  load_launch_file)

PACKAGE = "agent_stack"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
RESOURCE_INDEX = Path("share/ament_index/resource_index/packages")
POLL_S = 0.05

__all__ = ["Launcher", "LaunchDescription", "LaunchError", "ProcessSpec", "ament_environment",
           "agent_stack_prefix", "load_launch_file", "main", "parse_launch_arguments", "resolve_launch_file"]


# ---------------------------------------------------------------- environment

def _prefixes(environ: dict[str, str]) -> list[str]:
    return [p for p in environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def _installed_prefix(prefixes: list[str]) -> Path | None:
    for prefix in prefixes:
        if (Path(prefix) / RESOURCE_INDEX / PACKAGE).exists() and (Path(prefix) / "share" / PACKAGE).is_dir():
            return Path(prefix)
    return None


def _cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def agent_stack_prefix(environ: dict[str, str] | None = None) -> Path:
    """The ament prefix that provides `agent_stack`: a real install on AMENT_PREFIX_PATH or in the
    venv if there is one, else a small prefix in the cache dir whose share/agent_stack/{launch,config,
    package.xml} are symlinks into the source tree, so edits show up without reinstalling."""
    environ = dict(os.environ if environ is None else environ)
    installed = _installed_prefix(_prefixes(environ) + [sys.prefix])
    if installed is not None:
        return installed
    if not (SOURCE_ROOT / "package.xml").is_file():
        raise LaunchError(f"package '{PACKAGE}' is neither installed (no share/{PACKAGE} on "
                          f"AMENT_PREFIX_PATH or in {sys.prefix}) nor importable from a source tree")
    digest = hashlib.sha1(str(SOURCE_ROOT).encode()).hexdigest()[:12]
    prefix = _cache_root() / PACKAGE / f"ament_prefix-{digest}"
    if not (prefix / RESOURCE_INDEX / PACKAGE).exists():
        _build_prefix(prefix)
    return prefix


def _build_prefix(prefix: Path) -> None:
    """Build in a sibling temp dir and rename, so concurrent launchers never see half a prefix."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=prefix.parent))
    (staging / RESOURCE_INDEX).mkdir(parents=True)
    (staging / RESOURCE_INDEX / PACKAGE).touch()
    share = staging / "share" / PACKAGE
    share.mkdir(parents=True)
    for name in ("launch", "config", "package.xml"):
        (share / name).symlink_to(SOURCE_ROOT / name)
    try:
        staging.rename(prefix)
    except OSError:  # another launcher won the race; its prefix is identical
        shutil.rmtree(staging, ignore_errors=True)


def ament_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment launch files are evaluated in and children inherit: AMENT_PREFIX_PATH that
    resolves agent_stack (and the venv's ROS wheels), Fast DDS as RMW and its profile, unless set."""
    env = dict(os.environ if environ is None else environ)
    prefixes = _prefixes(env)
    own = str(agent_stack_prefix(env))
    venv_has_index = (Path(sys.prefix) / "share/ament_index").is_dir()
    extra = [own] if own not in prefixes else []
    tail = [sys.prefix] if venv_has_index and sys.prefix not in prefixes and sys.prefix != own else []
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(extra + prefixes + tail)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = Path(own) / "share" / PACKAGE / "config" / "fastdds.xml"
    # Fast DDS 3 (the Kilted wheels) reads FASTDDS_DEFAULT_PROFILES_FILE; setting the older
    # FASTRTPS_ name as well makes it load the profile twice and log duplicate-transport errors.
    if profile.is_file() and "FASTRTPS_DEFAULT_PROFILES_FILE" not in env:
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    return env


def resolve_launch_file(name: str | os.PathLike, environ: dict[str, str]) -> Path:
    """A path, or a bare file name looked up in agent_stack's share/launch directory."""
    path = Path(name).expanduser()
    if path.is_file():
        return Path(os.path.abspath(path))
    if len(path.parts) == 1:
        shared = find_package_prefix(PACKAGE, environ) / "share" / PACKAGE / "launch" / path.name
        if shared.is_file():
            return shared
        raise LaunchError(f"{name}: launch file not found here nor in {shared.parent}")
    raise LaunchError(f"{name}: launch file not found")


def parse_launch_arguments(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """`["a:=1", "b:=x"]` -> `{"a": "1", "b": "x"}` (a dict passes through)."""
    if isinstance(items, dict) or items is None:
        return dict(items or {})
    parsed = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError(f"launch argument {item!r} must look like name:=value")
        parsed[name] = value
    return parsed


# ---------------------------------------------------------------- process supervision

@dataclass
class _Child:
    spec: ProcessSpec
    popen: subprocess.Popen | None = None
    restart_at: float | None = None
    returncodes: list = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)
    signals_sent: set = field(default_factory=set)


class Launcher:
    """Evaluates a launch file on construction (raising LaunchError) and runs it on `start()`."""

    def __init__(self, launch_file: str | os.PathLike, arguments: dict[str, str] | list[str] | None = None, *,
                 environ: dict[str, str] | None = None, screen: TextIO | None = None,
                 log_dir: str | os.PathLike | None = None):
        self.environ = ament_environment(environ)
        self.path = resolve_launch_file(launch_file, self.environ)
        self.description = load_launch_file(self.path, parse_launch_arguments(arguments), self.environ)
        self._children = [_Child(spec) for spec in self.description.processes]
        self._screen = screen or sys.stdout
        self._screen_lock = threading.Lock()
        self._log_dir_base = log_dir
        self.log_dir: Path | None = None
        self._log_files: list[TextIO] = []
        self._stop_requests = 0   # bumped by signal handlers: nothing else is safe there
        self._stop_started: float | None = None
        self._stop_seen = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- public API

    def start(self) -> "Launcher":
        if self._thread is not None:
            raise RuntimeError("launcher already started")
        self._open_log_dir()
        for child in self._children:
            self._spawn(child)
        self._thread = threading.Thread(target=self._supervise, name="launcher", daemon=True)
        self._thread.start()
        return self

    def request_shutdown(self) -> None:
        """Begin shutdown; calling it again escalates (SIGTERM, then SIGKILL). Safe in a signal handler."""
        self._stop_requests += 1

    def wait(self, timeout: float | None = None) -> bool:
        """True once every process has exited and none is waiting to respawn."""
        if self._thread is None:
            return True
        return self._done.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            self.description.cleanup()
            return True
        if not self._done.is_set():
            self.request_shutdown()
        return self.wait(timeout)

    def __enter__(self) -> "Launcher":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    @property
    def returncodes(self) -> dict[str, list]:
        """Exit codes per process label, one per run (respawns add entries)."""
        return {child.spec.label: list(child.returncodes) for child in self._children}

    @property
    def pids(self) -> dict[str, list[int]]:
        """Every pid each process label has had, oldest first."""
        return {child.spec.label: list(child.pids) for child in self._children}

    # ---- output

    def _say(self, line: str) -> None:
        with self._screen_lock:
            self._screen.write(line + "\n")
            self._screen.flush()

    def _open_log_dir(self) -> None:
        """Like launch: one directory per run under ROS_LOG_DIR, $ROS_HOME/log or ~/.ros/log."""
        if all(child.spec.output == "screen" for child in self._children):
            return
        base = self._log_dir_base or os.environ.get("ROS_LOG_DIR") or Path(
            os.environ.get("ROS_HOME") or Path.home() / ".ros") / "log"
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
        self.log_dir = Path(base) / f"{stamp}-{socket.gethostname()}-{os.getpid()}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._say(f"[INFO] [launch]: All log files can be found below {self.log_dir}")

    def _sinks(self, spec: ProcessSpec) -> tuple[list[Callable], list[Callable]]:
        """Where stdout and stderr lines go; output="log" still shows stderr, as launch does."""
        screen = lambda line: self._say(f"[{spec.label}] {line}")  # noqa: E731
        if spec.output == "screen":
            return [screen], [screen]
        log = open(self.log_dir / f"{spec.label}.log", "a", buffering=1, errors="replace")  # noqa: SIM115
        self._log_files.append(log)
        to_log = lambda line: log.write(line + "\n")  # noqa: E731
        stdout = [screen, to_log] if spec.output == "both" else [to_log]
        return stdout, [screen, to_log]

    # ---- processes

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        env = dict(spec.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # Python children print through pipes: flush per line
        try:
            # Own session per child: a terminal Ctrl-C reaches only the launcher, which forwards
            # exactly one SIGINT; killpg() then also reaches the child's own subprocesses.
            child.popen = subprocess.Popen(
                spec.cmd[0] if spec.shell else list(spec.cmd),
                shell=spec.shell, env=env, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self._say(f"[ERROR] [launch]: [{spec.label}] failed to start ({spec.location}): {exc}")
            child.popen = None
            child.returncodes.append(None)
            return
        child.pids.append(child.popen.pid)
        child.signals_sent = set()
        stdout_sinks, stderr_sinks = self._sinks(spec)
        child.readers = [_pump(child.popen.stdout, stdout_sinks), _pump(child.popen.stderr, stderr_sinks)]
        self._say(f"[INFO] [{spec.label}]: process started with pid [{child.popen.pid}]")

    def _supervise(self) -> None:
        try:
            while not self._finished():
                now = time.monotonic()
                self._reap(now)
                if self._stop_requests > self._stop_seen:
                    self._begin_or_escalate_stop(now)
                if self._stop_started is None:
                    self._respawn_due(now)
                else:
                    self._escalate_by_timeout(now)
                time.sleep(POLL_S)
        finally:
            self._close()

    def _finished(self) -> bool:
        if any(child.popen is not None for child in self._children):
            return False
        return self._stop_started is not None or all(child.restart_at is None for child in self._children)

    def _reap(self, now: float) -> None:
        for child in self._children:
            if child.popen is None or child.popen.poll() is None:
                continue
            code = child.popen.returncode
            child.returncodes.append(code)
            for reader in child.readers:
                reader.join(timeout=1.0)  # print the last lines before the exit notice
            label, pid = child.spec.label, child.popen.pid
            child.popen = None
            if code == 0:
                self._say(f"[INFO] [{label}]: process has finished cleanly [pid {pid}]")
            else:
                self._say(f"[ERROR] [{label}]: process has died [pid {pid}, exit code {code}, "
                          f"cmd '{shlex.join(child.spec.cmd)}']")
            if self._stop_started is not None:
                continue
            if child.spec.respawn:
                child.restart_at = now + child.spec.respawn_delay
            elif child.spec.shutdown_on_exit:
                self._say(f"[INFO] [launch]: {label} exited and has on_exit=\"shutdown\": shutting down")
                self.request_shutdown()

    def _respawn_due(self, now: float) -> None:
        for child in self._children:
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                self._spawn(child)

    def _begin_or_escalate_stop(self, now: float) -> None:
        self._stop_seen = self._stop_requests
        if self._stop_started is None:
            self._stop_started = now
            self._say("[INFO] [launch]: shutting down: sending SIGINT to all processes")
            for child in self._children:
                child.restart_at = None
            self._signal_all(signal.SIGINT)
        else:  # a repeated Ctrl-C: skip the wait
            self._signal_all(signal.SIGKILL if self._stop_seen >= 3 else signal.SIGTERM)

    def _escalate_by_timeout(self, now: float) -> None:
        elapsed = now - self._stop_started
        for child in self._children:
            if child.popen is None:
                continue
            if elapsed > child.spec.sigterm_timeout + child.spec.sigkill_timeout:
                self._signal(child, signal.SIGKILL)
            elif elapsed > child.spec.sigterm_timeout:
                self._signal(child, signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self._children:
            if child.popen is not None:
                self._signal(child, sig)

    def _signal(self, child: _Child, sig: signal.Signals) -> None:
        if sig in child.signals_sent:
            return
        child.signals_sent.add(sig)
        if sig != signal.SIGINT:
            self._say(f"[WARNING] [{child.spec.label}]: still running, sending {sig.name}")
        try:
            os.killpg(child.popen.pid, sig)
        except ProcessLookupError:
            pass

    def _close(self) -> None:
        for child in self._children:
            for reader in child.readers:
                reader.join(timeout=1.0)
        for log in self._log_files:
            log.close()
        self.description.cleanup()
        self._done.set()


def _pump(stream, sinks: list[Callable]) -> threading.Thread:
    def run() -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                for sink in sinks:
                    sink(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- command line

def format_description(description: LaunchDescription, base_env: dict[str, str] | None = None) -> str:
    """Resolved command lines, environment changes and inline parameters, for --print."""
    base_env = dict(os.environ if base_env is None else base_env)
    lines = []
    for spec in description.processes:
        flags = [f"output={spec.output}"]
        flags += [f"respawn(delay={spec.respawn_delay}s)"] if spec.respawn else []
        lines.append(f"[{spec.label}]  # {spec.location}  {' '.join(flags)}")
        changed = {k: v for k, v in spec.env.items() if base_env.get(k) != v}
        removed = sorted(set(base_env) - set(spec.env))
        lines += [f"  env {k}={shlex.quote(v)}" for k, v in sorted(changed.items())]
        lines += [f"  env -u {k}" for k in removed]
        lines.append(f"  {shlex.join(spec.cmd)}")
        for params in spec.parameters:
            if isinstance(params, dict):
                text = yaml.safe_dump(params, default_flow_style=False, sort_keys=False).rstrip()
                lines.append("  # inline parameters:")
                lines += [f"  #   {line}" for line in text.splitlines()]
        lines.append("")
    return "\n".join(lines)


def format_arguments(description: LaunchDescription) -> str:
    lines = [f"Arguments of {description.file} (pass arguments as '<name>:=<value>'):"]
    for arg in description.arguments:
        lines.append(f"\n    '{arg.name}':\n        {arg.description or 'no description given'}")
        if arg.choices:
            lines.append(f"        Valid choices are: {list(arg.choices)}")
        default = "(required)" if arg.default is None else f"'{arg.default}'"
        lines.append(f"        (default: {default})")
    return "\n".join(lines)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-stack launch",
        description="Run a ROS 2 XML launch file without ros2launch "
                    "(the same files as `ros2 launch agent_stack FILE`).")
    parser.add_argument("launch_file", help="a path, or a file name in agent_stack's share/launch directory")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("-p", "--print", "--dry-run", dest="dry_run", action="store_true",
                        help="print the resolved command lines and exit without starting anything")
    parser.add_argument("-s", "--show-args", "--show-arguments", dest="show_args", action="store_true",
                        help="show the launch arguments the file declares and exit")
    return parser


def _run(launcher: Launcher) -> int:
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: launcher.request_shutdown()) for sig in handled}
    try:
        launcher.start()
        while not launcher.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    options = _argument_parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)
    try:
        launcher = Launcher(options.launch_file, options.arguments)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in launcher.description.unused_arguments:
        print(f"[WARNING] [launch]: argument '{name}' is not declared by any <arg> in the launch file",
              file=sys.stderr)
    if options.show_args or options.dry_run:
        print(format_arguments(launcher.description) if options.show_args
              else format_description(launcher.description))
        launcher.shutdown()
        return 0
    return _run(launcher)


if __name__ == "__main__":
    sys.exit(main())
