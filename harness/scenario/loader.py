"""Load scenario files: YAML (ruamel, for line numbers) -> validated ``Scenario``, or every problem at once.

Each problem is reported as ``file:line:col key.path: message``; pydantic's error locations are walked back through
the YAML tree to find the line of the offending key (or of its parent, for a missing key). ``load_model`` does the
same for any other YAML file the harness reads into a pydantic model (the user's config, ``harness.config``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from harness.errors import ScenarioError, ScenarioProblem
from harness.scenario.model import Scenario

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_scenario(path: Path, overrides: Sequence[str] = (), *, flag: str = "--set") -> Scenario:
    """``overrides``: ``key.path=value`` settings (``harness run --set``, ``harness values --set``, ``harness nightly
    --override``; ``flag`` names the option in messages) applied to the file's YAML before it is validated, so a value
    they set is checked (and reported) like one written in the file; a problem they cause says which setting it was."""
    if not overrides:
        return load_model(path, Scenario, what="a scenario file")
    data = _read_yaml(path, ScenarioError)
    if isinstance(data, CommentedMap):
        for setting in overrides:
            _override(data, setting, path, flag)
    try:
        return _validate(path, data, Scenario, what="a scenario file", error=ScenarioError)
    except ScenarioError as e:
        raise ScenarioError([_blame(p, data, overrides, flag) for p in e.problems]) from None


def split_override(setting: str) -> tuple[str, str] | None:
    """``key.path=value`` -> (key path, value text); None when it is not of that form."""
    key_path, sep, text = setting.partition("=")
    key_path = key_path.strip()
    if not sep or not all(key_path.split(".")):
        return None
    return key_path, text


def _override(data: CommentedMap, setting: str, path: Path, flag: str) -> None:
    split = split_override(setting)
    if split is None:
        key_path = setting.partition("=")[0]
        raise ScenarioError(
            [ScenarioProblem(str(path), None, None, key_path, f"{flag} {setting!r}: use KEY.PATH=VALUE")]
        )
    key_path, text = split
    keys = key_path.split(".")
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        raise ScenarioError(
            [ScenarioProblem(str(path), None, None, key_path, f"{flag}: invalid YAML value: {e}")]
        ) from None
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: i + 1])
            raise ScenarioError(
                [ScenarioProblem(str(path), None, None, where, f"{flag} {key_path}: {where} is no mapping")]
            )
        node = child
    node[keys[-1]] = value


def _blame(problem: ScenarioProblem, data: Any, overrides: Sequence[str], flag: str) -> ScenarioProblem:
    """A problem at (or under) a key an override set names that setting, since the file does not say it there;
    an unknown key it set lists the keys allowed in its place."""
    for setting in reversed(overrides):  # the last setting of a key is the one that took
        split = split_override(setting)
        if split is None:
            continue
        key_path = split[0]
        if problem.key_path != key_path and not problem.key_path.startswith(key_path + "."):
            continue
        message = problem.message
        if message.startswith("unknown key") and problem.key_path == key_path:
            allowed = _allowed_keys(data, key_path.split(".")[:-1])
            if allowed:
                message = f"unknown key; allowed here: {', '.join(allowed)}"
        return replace(problem, message=f"{message} (from {flag} {setting})")
    return problem


def _allowed_keys(data: Any, keys: Sequence[str]) -> list[str]:
    """The keys the scenario model allows in the mapping at ``keys`` (a tagged union by its tag in ``data``); empty
    when the path leads to no model."""
    model: Any = Scenario
    node = data
    for key in keys:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
        node = node.get(key) if isinstance(node, dict) else None
        if field is None:
            return []
        members = [a for a in get_args(field.annotation) if isinstance(a, type)] or [field.annotation]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(models) > 1 and field.discriminator and isinstance(node, dict):
            tag = node.get(field.discriminator)
            models = [m for m in models if tag in get_args(m.model_fields[str(field.discriminator)].annotation)]
        if len(models) != 1:
            return []
        model = models[0]
    return sorted(f.alias or n for n, f in model.model_fields.items())


def load_model(
    path: Path, model: type[ModelT], *, what: str, error: type[ScenarioError] = ScenarioError, empty_ok: bool = False
) -> ModelT:
    """Read ``path`` into ``model``; every problem raised at once as ``error`` with its file:line:col and key path.

    ``empty_ok``: an empty file is the model's defaults (a config file with everything commented out).
    """
    data = _read_yaml(path, error)
    if data is None and empty_ok:
        data = CommentedMap()
    return _validate(path, data, model, what=what, error=error)


def _validate(path: Path, data: Any, model: type[ModelT], *, what: str, error: type[ScenarioError]) -> ModelT:
    if not isinstance(data, CommentedMap):
        raise error([ScenarioProblem(str(path), 1, None, "", f"{what} must be a mapping (key: value) at the top")])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(_problems(path, data, e)) from None


def _read_yaml(path: Path, error: type[ScenarioError]) -> Any:
    yaml = YAML(typ="rt")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error([ScenarioProblem(str(path), None, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise error([ScenarioProblem(str(path), None, None, "", f"cannot read: {e}")]) from None
    try:
        return yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise error([ScenarioProblem(str(path), line, col, "", f"invalid YAML: {what}")]) from None
    except YAMLError as e:
        raise error([ScenarioProblem(str(path), None, None, "", f"invalid YAML: {e}")]) from None


def _problems(path: Path, data: CommentedMap, error: ValidationError) -> list[ScenarioProblem]:
    problems = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":
            # The wrong value is the discriminator's own: point at it, as for any other bad value.
            loc = (*loc, err.get("ctx", {}).get("discriminator", "").strip("'"))
        line, col, key_path = _locate(data, loc)
        problems.append(ScenarioProblem(str(path), line, col, key_path, _message(err)))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return problems


def _message(err: Any) -> str:
    kind = err["type"]
    msg: str = err["msg"]
    if kind == "extra_forbidden":
        return "unknown key (not allowed here; check the spelling against the documented keys)"
    if kind == "missing":
        return "required key is missing"
    if kind in ("literal_error", "union_tag_invalid"):
        ctx = err.get("ctx", {})
        # A literal says what it expected; a tagged union (storage.backend, faults[].action) names its tags.
        got, expected = (
            (ctx.get("tag"), ctx.get("expected_tags")) if "tag" in ctx else (err.get("input"), ctx.get("expected"))
        )
        if expected:
            return f"got {got!r}; allowed values: {expected}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if msg.startswith("Input should be") and "input" in err and not isinstance(err["input"], dict | list):
        return f"{msg[0].lower()}{msg[1:]}, got {err['input']!r}"
    return msg


def _locate(data: Any, loc: tuple[int | str, ...]) -> tuple[int | None, int | None, str]:
    """Walk ``loc`` through the YAML tree; return the deepest line/column found and the key path as written."""
    node = data
    line: int | None = 1
    col: int | None = 1
    parts: list[str] = []
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            if key in node.lc.data:  # a key added by an override (--set) has no line: keep its parent's
                ln, cl = node.lc.key(key)
                line, col = ln + 1, cl + 1
            parts.append(str(key))
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            ln, cl = node.lc.item(key)
            line, col = ln + 1, cl + 1
            parts.append(f"[{key}]")
            node = node[key]
        elif key == "[key]":
            continue  # pydantic's marker for "the key itself is wrong", already pointed at
        elif isinstance(node, CommentedMap) and isinstance(key, str) and _is_union_tag(node, key):
            # pydantic puts the discriminator value of a tagged union into the location; it is not a YAML key.
            continue
        else:
            # A missing key: point at its parent, but still name the full path.
            parts.append(str(key) if not isinstance(key, int) else f"[{key}]")
            node = None
    return line, col, ".".join(parts).replace(".[", "[")


def _is_union_tag(node: CommentedMap, key: str) -> bool:
    return any(node.get(tag) == key for tag in _UNION_TAGS)


# The discriminators of the scenario's tagged unions: storage by ``backend``, faults by ``action``.
_UNION_TAGS = ("backend", "action")
