"""Evaluate a ROS 2 XML launch file (the launch / launch_ros XML frontend) without the `launch` package.

`load_launch_file()` walks the XML once, resolving arguments, conditions, substitutions, includes,
groups and namespaces, and returns a flat list of `ProcessSpec`s: exactly what to start, with which
command line and environment. Everything is resolved before anything starts, so a typo in an
included file fails the whole launch up front, with `file:line` in the message.

Semantics follow launch / launch_ros (Humble to Kilted):
- `<arg>` does not override a value given on the command line or by an `<include>`;
- `<include>` is not scoped: its args and lets stay set afterwards, as with `ros2 launch`
  (wrap it in `<group>` to scope it);
- `<group>` is scoped by default (configurations, environment and ROS namespace);
- inline `<param>` values are typed like launch_ros does, through YAML.
"""

from __future__ import annotations

import ast
import math
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from lxml import etree


class LaunchError(Exception):
    """A problem with a launch file; the message starts with `file:line:`."""


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


# ---------------------------------------------------------------- substitutions: $(name arg ...)

@dataclass(frozen=True)
class Subst:
    """One `$(name args...)`; each argument is itself a list of text and substitutions."""

    name: str
    args: tuple[tuple, ...]


_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class _SubstParser:
    """Recursive-descent parser for the launch substitution grammar (quoted args may nest `$(...)`)."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def parse(self) -> tuple:
        parts = self._text(stop="")
        return parts

    def _text(self, stop: str) -> tuple:
        """Literal text and substitutions up to (not including) a character in `stop`."""
        parts: list = []
        literal: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in stop:
                break
            if self.text.startswith("$(", self.pos):
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(self._subst())
                continue
            if char == "\\" and stop in ("'", '"') and self.text[self.pos + 1:self.pos + 2] == stop:
                char = stop  # \' inside a '...' argument is a literal quote
                self.pos += 1
            literal.append(char)
            self.pos += 1
        if literal:
            parts.append("".join(literal))
        return tuple(parts)

    def _subst(self) -> Subst:
        start = self.pos
        self.pos += 2
        match = _NAME_RE.match(self.text, self.pos)
        if not match:
            raise LaunchError(f"bad substitution at column {start + 1} of {self.text!r}: "
                              "expected a name after '$('")
        self.pos = match.end()
        args = []
        while True:
            while self.pos < len(self.text) and self.text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(self.text):
                raise LaunchError(f"unterminated substitution '$({match.group()} ...' in {self.text!r}")
            if self.text[self.pos] == ")":
                self.pos += 1
                return Subst(match.group(), tuple(args))
            args.append(self._argument())

    def _argument(self) -> tuple:
        quote = self.text[self.pos]
        if quote not in "'\"":
            return self._text(stop=" \t\r\n)")
        self.pos += 1
        value = self._text(stop=quote)
        if self.pos >= len(self.text):
            raise LaunchError(f"unterminated quoted argument in {self.text!r}")
        self.pos += 1
        return value if value else ("",)


def parse_substitutions(text: str) -> tuple:
    """Split `text` into literal strings and `Subst`s."""
    return _SubstParser(text).parse()


# ---------------------------------------------------------------- $(eval ...) without eval()

_EVAL_FUNCS: dict[str, Callable] = {
    **{name: getattr(math, name) for name in dir(math) if not name.startswith("_")},
    "abs": abs, "min": min, "max": max, "round": round, "int": int, "float": float,
    "str": str, "bool": bool, "len": len,
}
_EVAL_NAMES = {*_EVAL_FUNCS, "math", "True", "False", "None"}
_EVAL_NODES = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp,
    ast.Not, ast.USub, ast.UAdd, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Pow, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Is, ast.IsNot, ast.IfExp, ast.Tuple, ast.List, ast.Call, ast.Attribute,
)


def safe_eval(expression: str) -> str:
    """`$(eval)` for the expressions launch files use: literals, arithmetic, comparisons, boolean
    logic, `x if c else y`, and `math` functions. Anything else (imports, attributes other than
    `math.x`, subscripts, lambdas) is refused rather than handed to Python's eval()."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise LaunchError(f"$(eval {expression!r}): not a Python expression ({exc.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _EVAL_NODES):
            raise LaunchError(f"$(eval {expression!r}): unsupported syntax {type(node).__name__} "
                              "(the pip-only launcher evaluates literals, operators and math functions only)")
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name)
                                                    and node.value.id == "math"):
            raise LaunchError(f"$(eval {expression!r}): only math.<name> attributes are supported")
        if isinstance(node, ast.Name) and node.id not in _EVAL_NAMES:
            raise LaunchError(f"$(eval {expression!r}): unknown name {node.id!r}")
    namespace = {"__builtins__": {}, "math": math, **_EVAL_FUNCS}
    try:
        # The tree was checked against _EVAL_NODES above, so this runs no arbitrary code.
        return str(eval(compile(tree, "<eval>", "eval"), namespace))  # noqa: S307
    except Exception as exc:  # noqa: BLE001 - any evaluation failure is a launch-file error
        raise LaunchError(f"$(eval {expression!r}) failed: {exc}") from None


# ---------------------------------------------------------------- packages (ament index)

def find_package_prefix(package: str, environ: dict[str, str]) -> Path:
    """The first AMENT_PREFIX_PATH entry holding `package` in its resource index, like ament_index."""
    searched = [p for p in environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in searched:
        if (Path(prefix) / "share/ament_index/resource_index/packages" / package).exists():
            return Path(prefix)
    raise LaunchError(f"package '{package}' not found, searching AMENT_PREFIX_PATH: {searched}")


def find_node_executable(package: str, executable: str, environ: dict[str, str], venv_bin: Path) -> str:
    """Where `ros2 run package executable` finds it, then the venv's console scripts, then PATH."""
    prefix = find_package_prefix(package, environ)
    candidates = [prefix / "lib" / package / executable, venv_bin / executable]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(executable, path=environ.get("PATH"))
    if found:
        return found
    raise LaunchError(f"executable '{executable}' not found in package '{package}' "
                      f"(looked in {candidates[0].parent}, {venv_bin} and PATH)")


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class ProcessSpec:
    """One process to start, fully resolved."""

    label: str                       # prefix for output lines: the node name, or the executable name
    cmd: tuple[str, ...]
    env: dict[str, str]              # the complete environment of the process
    location: str                    # file:line of the <node>/<executable>
    cwd: str | None = None
    shell: bool = False
    output: str = "log"              # screen | log | both (launch's default is log: stderr still shown)
    respawn: bool = False
    respawn_delay: float = 0.0
    sigterm_timeout: float = 5.0     # launch's defaults
    sigkill_timeout: float = 5.0
    shutdown_on_exit: bool = False   # on_exit="shutdown"
    node_name: str | None = None     # fully qualified name, when the launch file sets it
    parameters: tuple = ()           # inline parameter dicts and parameter file paths, in order
    remappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ArgumentInfo:
    name: str
    default: str | None
    description: str
    choices: tuple[str, ...]
    location: str


@dataclass
class LaunchDescription:
    """What a launch file evaluates to."""

    file: Path
    processes: list[ProcessSpec]
    arguments: list[ArgumentInfo]
    configurations: dict[str, str]   # top-level launch configurations after evaluation
    unused_arguments: list[str]      # command-line arguments that no <arg> declared
    params_dir: Path | None = None   # where the inline-parameter YAML files were written

    def cleanup(self) -> None:
        """Remove the temporary parameter files."""
        if self.params_dir is not None:
            shutil.rmtree(self.params_dir, ignore_errors=True)
            self.params_dir = None


# ---------------------------------------------------------------- evaluation state

@dataclass
class _Scope:
    """What a <group scoped="true"> saves and restores: launch configurations, environment, namespace."""

    configs: dict[str, str]
    env: dict[str, str]
    ros_namespace: str = ""

    def copy(self) -> "_Scope":
        return _Scope(dict(self.configs), dict(self.env), self.ros_namespace)


@dataclass
class _Evaluator:
    venv_bin: Path
    params_dir_factory: Callable[[], Path]
    processes: list[ProcessSpec] = field(default_factory=list)
    arguments: list[ArgumentInfo] = field(default_factory=list)
    anon_names: dict[str, str] = field(default_factory=dict)
    include_stack: list[Path] = field(default_factory=list)
    params_dir: Path | None = None
    labels: dict[str, int] = field(default_factory=dict)

    # ---- files

    def run_file(self, path: Path, scope: _Scope) -> None:
        path = Path(os.path.abspath(path))
        if path in self.include_stack:
            raise LaunchError(f"{path}: recursive include")
        if path.suffix == ".py" or path.name.endswith((".launch.yaml", ".launch.yml")):
            raise LaunchError(f"{path}: only XML launch files are supported by the pip-only launcher")
        root = _parse_xml(path)
        if root.tag != "launch":
            raise LaunchError(f"{_where(path, root.sourceline)}: root element must be <launch>, "
                              f"not <{root.tag}>")
        _check_attributes(path, root, {"version"})
        self.include_stack.append(path)
        try:
            self.run_children(path, root, scope)
        finally:
            self.include_stack.pop()

    def run_children(self, path: Path, element, scope: _Scope) -> None:
        for child in _elements(element):
            self.run_action(path, child, scope)

    def run_action(self, path: Path, element, scope: _Scope) -> None:
        handler = _ACTIONS.get(element.tag)
        if handler is None:
            raise LaunchError(f"{_where(path, element.sourceline)}: unknown tag <{element.tag}> "
                              f"(supported: {', '.join(sorted(_ACTIONS))})")
        _check_attributes(path, element, _ATTRIBUTES[handler] | {"if", "unless"})
        if not self.condition_holds(path, element, scope):
            return
        try:
            handler(self, path, element, scope)
        except LaunchError as exc:
            if _has_location(str(exc)):
                raise
            raise LaunchError(f"{_where(path, element.sourceline)}: {exc}") from None

    # ---- substitutions

    def resolve(self, path: Path, element, text: str | None, scope: _Scope) -> str | None:
        if text is None:
            return None
        try:
            return self.evaluate(parse_substitutions(text), path, scope)
        except LaunchError as exc:
            raise LaunchError(f"{_where(path, element.sourceline)}: {exc}") from None

    def attr(self, path: Path, element, name: str, scope: _Scope, default: str | None = None,
             required: bool = False) -> str | None:
        if required and name not in element.attrib:
            raise LaunchError(f"{_where(path, element.sourceline)}: <{element.tag}> requires "
                              f"attribute '{name}'")
        value = self.resolve(path, element, element.get(name), scope)
        return default if value is None else value

    def evaluate(self, parts: tuple, path: Path, scope: _Scope) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                args = [self.evaluate(arg, path, scope) for arg in part.args]
                out.append(self.substitute(part.name, args, path, scope))
        return "".join(out)

    def substitute(self, name: str, args: list[str], path: Path, scope: _Scope) -> str:
        handler = _SUBSTITUTIONS.get(name)
        if handler is None:
            supported = ", ".join(sorted(_SUBSTITUTIONS))
            raise LaunchError(f"unknown substitution '$({name})' (supported: {supported})")
        low, high = _SUBST_ARITY[name]
        if not low <= len(args) <= high:
            raise LaunchError(f"$({name}) takes {low}..{high} arguments, got {len(args)}: {args}")
        return handler(self, args, path, scope)

    def condition_holds(self, path: Path, element, scope: _Scope) -> bool:
        holds = True
        if "if" in element.attrib:
            holds = self.boolean(path, element, "if", scope)
        if "unless" in element.attrib:
            holds = holds and not self.boolean(path, element, "unless", scope)
        return holds

    def boolean(self, path: Path, element, name: str, scope: _Scope, default: bool = False) -> bool:
        value = self.attr(path, element, name, scope)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise LaunchError(f"{_where(path, element.sourceline)}: {name}={value!r} is not a boolean "
                          "(expected true, false, 1 or 0)")

    def number(self, path: Path, element, name: str, scope: _Scope, default: float) -> float:
        value = self.attr(path, element, name, scope)
        try:
            return default if value is None else float(value)
        except ValueError:
            where = _where(path, element.sourceline)
            raise LaunchError(f"{where}: {name}={value!r} is not a number") from None

    # ---- helpers for actions

    def unique_label(self, base: str) -> str:
        count = self.labels.get(base, 0) + 1
        self.labels[base] = count
        return base if count == 1 else f"{base}-{count}"

    def write_params(self, params: dict, key: str) -> Path:
        if self.params_dir is None:
            self.params_dir = self.params_dir_factory()
        handle, name = tempfile.mkstemp(prefix="launch_params_", suffix=".yaml", dir=self.params_dir)
        with os.fdopen(handle, "w") as stream:
            yaml.safe_dump({key: {"ros__parameters": params}}, stream, default_flow_style=False,
                           sort_keys=False)
        return Path(name)


_LOCATION_RE = re.compile(r"^/\S*?(:\d+)?: ")  # errors start with an absolute path


def _has_location(message: str) -> bool:
    return bool(_LOCATION_RE.match(message))


# ---------------------------------------------------------------- XML plumbing

def _parse_xml(path: Path):
    if not path.is_file():
        raise LaunchError(f"{path}: launch file not found")
    try:
        return etree.parse(str(path), etree.XMLParser(remove_comments=True, resolve_entities=False)).getroot()
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else None)
        raise LaunchError(f"{_where(path, line)}: malformed XML: {exc.msg}") from None


def _elements(element):
    """Child elements, skipping processing instructions (comments are removed by the parser)."""
    return [child for child in element if isinstance(child.tag, str)]


def _check_attributes(path: Path, element, allowed: set[str]) -> None:
    unknown = sorted(set(element.attrib) - allowed)
    if unknown:
        raise LaunchError(f"{_where(path, element.sourceline)}: unknown attribute(s) {unknown} on "
                          f"<{element.tag}> (allowed: {', '.join(sorted(allowed))})")


def _check_children(path: Path, element, allowed: set[str]) -> None:
    for child in _elements(element):
        if child.tag not in allowed:
            what = ", ".join(f"<{tag}>" for tag in sorted(allowed)) or "no child elements"
            raise LaunchError(f"{_where(path, child.sourceline)}: unexpected <{child.tag}> inside "
                              f"<{element.tag}> (allowed: {what})")


def _resolve_path(value: str, path: Path, element, what: str) -> Path:
    """Relative paths resolve against the current directory, as in ros2 launch."""
    resolved = Path(value).expanduser()
    if not resolved.exists():
        raise LaunchError(f"{_where(path, element.sourceline)}: {what} '{value}' not found "
                          "(relative paths are taken from the current directory, as ros2 launch does; "
                          "use $(dirname)/... or $(find-pkg-share pkg)/...)")
    return Path(os.path.abspath(resolved))


# ---------------------------------------------------------------- namespaces and parameter values

def make_namespace_absolute(namespace: str) -> str:
    parts = [p for p in namespace.split("/") if p]
    return "/" + "/".join(parts)


def prefix_namespace(base: str, namespace: str) -> str:
    """launch_ros: an absolute namespace replaces the pushed one, a relative one is appended to it."""
    if namespace.startswith("/"):
        return make_namespace_absolute(namespace)
    return make_namespace_absolute(f"{base}/{namespace}")


_PARAM_SCALARS = (bool, int, float, str)


def typed_parameter_value(text: str):
    """launch_ros types a parameter string through YAML: 3 -> int, 2.5 -> float, true -> bool,
    [1, 2] -> list; anything else (and mixed lists, maps, empty values) stays a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, _PARAM_SCALARS):
        return value
    if isinstance(value, list) and value and _homogeneous(value):
        return value
    return text


def _homogeneous(values: list) -> bool:
    kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else type(v)
             for v in values}
    if len(kinds) != 1 or kinds.pop() not in _PARAM_SCALARS:
        return False
    return True


def _numbers_as_floats(values: list) -> list:
    """A YAML list mixing 1 and 2.5 must be a double array for rcl, not an error."""
    if any(isinstance(v, float) for v in values) and not any(isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return values


# ---------------------------------------------------------------- actions

def _arg(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, {"choice"})
    name = ev.attr(path, el, "name", scope, required=True)
    default = ev.attr(path, el, "default", scope)
    description = el.get("description", "")
    choices = []
    for choice in _elements(el):
        _check_attributes(path, choice, {"value"})
        choices.append(ev.attr(path, choice, "value", scope, required=True))
    ev.arguments.append(ArgumentInfo(name, default, description, tuple(choices), _where(path, el.sourceline)))
    if name not in scope.configs:
        if default is None:
            given = ", ".join(sorted(scope.configs)) or "none"
            raise LaunchError(f"{_where(path, el.sourceline)}: missing required argument '{name}' "
                              f"(description: '{description}'); pass it as {name}:=VALUE (given: {given})")
        scope.configs[name] = default
    if choices and scope.configs[name] not in choices:
        raise LaunchError(f"{_where(path, el.sourceline)}: argument '{name}' is "
                          f"'{scope.configs[name]}', expected one of {choices}")


def _let(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, set())
    name = ev.attr(path, el, "name", scope, required=True)
    scope.configs[name] = ev.attr(path, el, "value", scope, required=True)


def _set_env(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, set())
    name = ev.attr(path, el, "name", scope, required=True)
    scope.env[name] = ev.attr(path, el, "value", scope, required=True)


def _unset_env(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, set())
    scope.env.pop(ev.attr(path, el, "name", scope, required=True), None)


def _push_ros_namespace(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, set())
    namespace = ev.attr(path, el, "namespace", scope, required=True)
    scope.ros_namespace = prefix_namespace(scope.ros_namespace, namespace)


def _group(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    scoped = ev.boolean(path, el, "scoped", scope, default=True)
    forwarding = ev.boolean(path, el, "forwarding", scope, default=True)
    inner = scope.copy() if scoped or not forwarding else scope
    if not forwarding:
        inner.configs = {}  # forwarding="false": the group starts without the parent's configurations
    ev.run_children(path, el, inner)


def _include(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, {"arg"})
    target = _resolve_path(ev.attr(path, el, "file", scope, required=True), path, el, "included file")
    values = {}
    for arg in _elements(el):
        _check_attributes(path, arg, {"name", "value"})
        name = ev.attr(path, arg, "name", scope, required=True)
        values[name] = ev.attr(path, arg, "value", scope, required=True)
    scope.configs.update(values)  # not scoped, as in launch: wrap the include in a <group> to scope it
    try:
        ev.run_file(target, scope)
    except LaunchError as exc:
        raise LaunchError(f"{exc}\n  included from {_where(path, el.sourceline)}") from None


def _env_children(ev: _Evaluator, path: Path, el, scope: _Scope) -> dict[str, str]:
    env = dict(scope.env)
    for child in _elements(el):
        if child.tag == "env":
            _check_attributes(path, child, {"name", "value"})
            env[ev.attr(path, child, "name", scope, required=True)] = ev.attr(path, child, "value", scope,
                                                                               required=True)
    return env


def _process_options(ev: _Evaluator, path: Path, el, scope: _Scope) -> dict:
    """Attributes shared by <node> and <executable> (launch's ExecuteProcess)."""
    output = ev.attr(path, el, "output", scope, default="log")
    if output not in ("screen", "log", "both"):
        raise LaunchError(f"{_where(path, el.sourceline)}: output='{output}' must be screen, log or both")
    on_exit = ev.attr(path, el, "on_exit", scope)
    if on_exit not in (None, "shutdown"):
        raise LaunchError(f"{_where(path, el.sourceline)}: on_exit='{on_exit}' is not supported "
                          "(only 'shutdown')")
    return dict(
        location=_where(path, el.sourceline),
        cwd=ev.attr(path, el, "cwd", scope),
        output=output,
        respawn=ev.boolean(path, el, "respawn", scope),
        respawn_delay=ev.number(path, el, "respawn_delay", scope, 0.0),
        sigterm_timeout=ev.number(path, el, "sigterm_timeout", scope, 5.0),
        sigkill_timeout=ev.number(path, el, "sigkill_timeout", scope, 5.0),
        shutdown_on_exit=on_exit == "shutdown",
    )


def _split(ev: _Evaluator, path: Path, el, name: str, scope: _Scope) -> list[str]:
    value = ev.attr(path, el, name, scope)
    try:
        return shlex.split(value) if value else []
    except ValueError as exc:
        raise LaunchError(f"{_where(path, el.sourceline)}: {name}={value!r}: {exc}") from None


def _executable(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, {"env"})
    shell = ev.boolean(path, el, "shell", scope)
    env = _env_children(ev, path, el, scope)
    prefix = _split(ev, path, el, "launch-prefix", scope)
    if shell:  # one command string for /bin/sh, so pipes and redirections keep working
        text = " ".join(filter(None, [*prefix, ev.attr(path, el, "cmd", scope, required=True),
                                      ev.attr(path, el, "args", scope)]))
        cmd, program = [text], text.split()[0]
    else:
        cmd = _split(ev, path, el, "cmd", scope) + _split(ev, path, el, "args", scope)
        if not cmd:
            raise LaunchError(f"{_where(path, el.sourceline)}: <executable> requires a non-empty 'cmd'")
        found = shutil.which(cmd[0], path=env.get("PATH"))
        if not found:
            raise LaunchError(f"{_where(path, el.sourceline)}: executable '{cmd[0]}' not found")
        cmd, program = [*prefix, found, *cmd[1:]], found
    base = ev.attr(path, el, "name", scope) or Path(program).name
    ev.processes.append(ProcessSpec(label=ev.unique_label(base), cmd=tuple(cmd), env=env, shell=shell,
                                    **_process_options(ev, path, el, scope)))


def _node(ev: _Evaluator, path: Path, el, scope: _Scope) -> None:
    _check_children(path, el, {"param", "remap", "env"})
    package = ev.attr(path, el, "pkg", scope, required=True)
    executable = ev.attr(path, el, "exec", scope, required=True)
    name = ev.attr(path, el, "name", scope)
    namespace = _node_namespace(ev, path, el, scope)
    exe = find_node_executable(package, executable, scope.env, ev.venv_bin)
    fqn = f"{namespace.rstrip('/')}/{name}" if name and namespace else None
    parameters = _node_parameters(ev, path, el, scope)
    remaps = []
    for child in _elements(el):
        if child.tag == "remap":
            _check_attributes(path, child, {"from", "to"})
            remaps.append((ev.attr(path, child, "from", scope, required=True),
                           ev.attr(path, child, "to", scope, required=True)))
    ros_args = _split(ev, path, el, "ros_args", scope)
    ros_args += ["-r", f"__node:={name}"] if name else []
    ros_args += ["-r", f"__ns:={namespace}"] if namespace else []
    params_key = fqn or "/**"
    for entry in parameters:
        file = ev.write_params(entry, params_key) if isinstance(entry, dict) else entry
        ros_args += ["--params-file", str(file)]
    for source, target in remaps:
        ros_args += ["-r", f"{source}:={target}"]
    cmd = [*_split(ev, path, el, "launch-prefix", scope), exe, *_split(ev, path, el, "args", scope),
           "--ros-args", *ros_args]
    label = ev.unique_label(ev.attr(path, el, "exec_name", scope) or name or executable)
    ev.processes.append(ProcessSpec(label=label, cmd=tuple(cmd), env=_env_children(ev, path, el, scope),
                                    node_name=fqn, parameters=tuple(parameters), remappings=tuple(remaps),
                                    **_process_options(ev, path, el, scope)))


def _node_namespace(ev: _Evaluator, path: Path, el, scope: _Scope) -> str | None:
    namespace = ev.attr(path, el, "namespace", scope)
    if namespace is None and not scope.ros_namespace:
        return None  # leave the node's own default namespace alone, as launch_ros does
    return prefix_namespace(scope.ros_namespace, namespace or "")


def _node_parameters(ev: _Evaluator, path: Path, el, scope: _Scope) -> list:
    """Consecutive inline <param>s become one dict; each <param from> keeps its place in the order,
    so later sources override earlier ones as with launch_ros."""
    entries: list = []
    for child in _elements(el):
        if child.tag != "param":
            continue
        if "from" in child.attrib:
            _check_attributes(path, child, {"from"})
            _check_children(path, child, set())
            entries.append(_resolve_path(ev.attr(path, child, "from", scope), path, child, "parameter file"))
            continue
        if not entries or not isinstance(entries[-1], dict):
            entries.append({})
        name, value = _inline_param(ev, path, child, scope)
        entries[-1][name] = value
    return entries


def _inline_param(ev: _Evaluator, path: Path, el, scope: _Scope) -> tuple[str, object]:
    _check_attributes(path, el, {"name", "value", "value-sep"})
    name = ev.attr(path, el, "name", scope, required=True)
    children = _elements(el)
    if children:  # <param name="group"><param name="x" value="1"/></param> is a nested map
        _check_children(path, el, {"param"})
        return name, dict(_inline_param(ev, path, child, scope) for child in children)
    value = ev.attr(path, el, "value", scope)
    if value is None:
        raise LaunchError(f"{_where(path, el.sourceline)}: <param name='{name}'> needs 'value', 'from' "
                          "or nested <param>s")
    separator = ev.attr(path, el, "value-sep", scope)
    if separator is not None:
        items = [typed_parameter_value(item) for item in value.split(separator)] if value else []
        if items and not _homogeneous(items):
            items = [str(item) for item in value.split(separator)]
        return name, _numbers_as_floats(items)
    typed = typed_parameter_value(value)
    return name, _numbers_as_floats(typed) if isinstance(typed, list) else typed


_ACTIONS: dict[str, Callable] = {
    "arg": _arg, "let": _let, "node": _node, "executable": _executable, "include": _include, "group": _group,
    "push-ros-namespace": _push_ros_namespace, "push_ros_namespace": _push_ros_namespace,
    "set_env": _set_env, "set-env": _set_env, "unset_env": _unset_env, "unset-env": _unset_env,
}
_PROCESS_ATTRIBUTES = {"output", "respawn", "respawn_delay", "cwd", "launch-prefix", "sigterm_timeout",
                       "sigkill_timeout", "on_exit", "args"}
_ATTRIBUTES: dict[Callable, set[str]] = {
    _arg: {"name", "default", "description"},
    _let: {"name", "value"},
    _node: _PROCESS_ATTRIBUTES | {"pkg", "exec", "name", "namespace", "ros_args", "exec_name"},
    _executable: _PROCESS_ATTRIBUTES | {"cmd", "name", "shell"},
    _include: {"file"},
    _group: {"scoped", "forwarding"},
    _push_ros_namespace: {"namespace"},
    _set_env: {"name", "value"},
    _unset_env: {"name"},
}


# ---------------------------------------------------------------- substitution handlers

def _s_var(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    if args[0] not in scope.configs:
        raise LaunchError(f"$(var {args[0]}): launch configuration '{args[0]}' does not exist "
                          f"(known: {', '.join(sorted(scope.configs)) or 'none'})")
    return scope.configs[args[0]]


def _s_env(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    if args[0] in scope.env:
        return scope.env[args[0]]
    if len(args) > 1:
        return args[1]
    raise LaunchError(f"$(env {args[0]}): environment variable '{args[0]}' is not set and has no default")


def _s_optenv(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    return scope.env.get(args[0], args[1] if len(args) > 1 else "")


def _s_anon(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    """Same name -> same anonymous name within one launch, like launch's anon_name()."""
    if args[0] not in ev.anon_names:
        raw = f"{args[0]}_{socket.gethostname()}_{os.getpid()}_{random.randrange(10**9)}"
        ev.anon_names[args[0]] = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    return ev.anon_names[args[0]]


def _s_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise LaunchError(f"'{text}' is not a boolean (expected true, false, 1 or 0)")
    return lowered in ("true", "1")


def _s_command(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    """$(command 'xacro robot.urdf.xacro' [fail|warn|ignore|capture]), as launch's Command."""
    on_stderr = args[1] if len(args) > 1 else "fail"
    if on_stderr not in ("fail", "warn", "ignore", "capture"):
        raise LaunchError(f"$(command): on_stderr '{on_stderr}' must be fail, warn, ignore or capture")
    try:
        result = subprocess.run(shlex.split(args[0]), capture_output=True, text=True, env=scope.env,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise LaunchError(f"$(command {args[0]!r}) failed: {exc}") from None
    if result.returncode != 0 or (result.stderr and on_stderr == "fail"):
        raise LaunchError(f"$(command {args[0]!r}) failed (exit {result.returncode}): "
                          f"{result.stderr.strip()}")
    return result.stdout + (result.stderr if on_stderr == "capture" else "")


def _s_exec_in_pkg(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    return find_node_executable(args[1], args[0], scope.env, ev.venv_bin)


def _s_find_exec(ev: _Evaluator, args: list[str], path: Path, scope: _Scope) -> str:
    found = shutil.which(args[0], path=scope.env.get("PATH"))
    if not found:
        raise LaunchError(f"$(find-exec {args[0]}): executable not found on PATH")
    return found


def _flag(value: bool) -> str:
    return "true" if value else "false"


_SUBSTITUTIONS: dict[str, Callable] = {
    "var": _s_var,
    "env": _s_env,
    "optenv": _s_optenv,
    "find-pkg-share": lambda ev, a, p, s: str(find_package_prefix(a[0], s.env) / "share" / a[0]),
    "find-pkg-prefix": lambda ev, a, p, s: str(find_package_prefix(a[0], s.env)),
    "exec-in-pkg": _s_exec_in_pkg,
    "find-exec": _s_find_exec,
    "dirname": lambda ev, a, p, s: str(p.parent),
    "filename": lambda ev, a, p, s: str(p),
    "anon": _s_anon,
    "eval": lambda ev, a, p, s: safe_eval(a[0]),
    "command": _s_command,
    "not": lambda ev, a, p, s: _flag(not _s_bool(a[0])),
    "and": lambda ev, a, p, s: _flag(_s_bool(a[0]) and _s_bool(a[1])),
    "or": lambda ev, a, p, s: _flag(_s_bool(a[0]) or _s_bool(a[1])),
    "equals": lambda ev, a, p, s: _flag(a[0] == a[1]),
}
_SUBST_ARITY = {
    "var": (1, 1), "env": (1, 2), "optenv": (1, 2), "find-pkg-share": (1, 1), "find-pkg-prefix": (1, 1),
    "exec-in-pkg": (2, 2), "find-exec": (1, 1), "dirname": (0, 0), "filename": (0, 0), "anon": (1, 1),
    "eval": (1, 1), "command": (1, 2), "not": (1, 1), "and": (2, 2), "or": (2, 2), "equals": (2, 2),
}


# ---------------------------------------------------------------- entry point

def load_launch_file(path: str | os.PathLike, arguments: dict[str, str] | None = None,
                     environ: dict[str, str] | None = None, venv_bin: str | os.PathLike | None = None,
                     ) -> LaunchDescription:
    """Evaluate `path` with command-line `arguments` (name -> value) in `environ`.

    Raises LaunchError naming the file and line for any problem. Inline parameters are written to
    YAML files in a temporary directory; call `LaunchDescription.cleanup()` when done."""
    path = Path(os.path.abspath(path))
    arguments = dict(arguments or {})
    scope = _Scope(configs=dict(arguments), env=dict(os.environ if environ is None else environ))
    evaluator = _Evaluator(venv_bin=Path(venv_bin or Path(sys.prefix) / "bin"),
                           params_dir_factory=lambda: Path(tempfile.mkdtemp(prefix="agent_stack_launch_")))
    try:
        evaluator.run_file(path, scope)
    except LaunchError:
        if evaluator.params_dir is not None:
            shutil.rmtree(evaluator.params_dir, ignore_errors=True)
        raise
    declared = {arg.name for arg in evaluator.arguments}
    return LaunchDescription(file=path, processes=evaluator.processes, arguments=evaluator.arguments,
                             configurations=scope.configs,
                             unused_arguments=sorted(set(arguments) - declared),
                             params_dir=evaluator.params_dir)
