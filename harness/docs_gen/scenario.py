"""``scenario.md``: every key of a scenario file, from the pydantic models (``harness.scenario.model.Scenario``):
nested models flattened to dotted key paths (``storage.claim.size``), one table per storage backend and per fault
action (the two discriminated unions)."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from harness.docs_gen.markdown import banner, cell, docstring_of, note
from harness.scenario.model import Scenario
from harness.scenario.units import (
    DURATION_UNITS,
    SIZE_UNITS,
    format_duration,
    format_size,
    parse_duration_s,
    parse_size_bytes,
)

# --- the scenario file --------------------------------------------------------------------------------------------

Unit = Literal["duration", "size"] | None
_UNITS: dict[Callable[[object], object], Literal["duration", "size"]] = {
    parse_duration_s: "duration",
    parse_size_bytes: "size",
}


def _units(units: Mapping[str, float]) -> str:
    return ", ".join(f"`{u}`" for u in units)


def _unit(metadata: Sequence[object]) -> Unit:
    for m in metadata:
        if isinstance(m, BeforeValidator) and m.func in _UNITS:
            return _UNITS[m.func]
    return None


def _strip_annotated(annotation: Any, metadata: Sequence[object] = ()) -> tuple[Any, tuple[object, ...]]:
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return _strip_annotated(base, (*metadata, *extra))
    return annotation, tuple(metadata)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: itself, its non-null alternatives, or its list's items."""
    annotation, _ = _strip_annotated(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if _is_union(annotation):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _type_text(annotation: Any, metadata: Sequence[object] = ()) -> str:
    annotation, metadata = _strip_annotated(annotation, metadata)
    unit = _unit(metadata)
    if unit is not None:
        return unit
    if _is_union(annotation):
        args = get_args(annotation)
        parts = [_type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (", or null" if type(None) in args else "")
    return _plain_type(annotation)


def _plain_type(annotation: Any) -> str:
    """A type that is not a union, in words: a literal's values, a list's items, a mapping's keys and values."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        values = [f"`{v}`" for v in args]
        text = values[0] if len(values) == 1 else "one of " + ", ".join(values)
    elif origin is list:
        text = f"list of {_type_text(args[0])}"
    elif origin is dict:
        text = f"mapping of {_type_text(args[0])} to {_type_text(args[1])}"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "mapping"
    else:
        names = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
        text = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return text


def _limits(metadata: Sequence[object]) -> str:
    """The bounds pydantic enforces on a value (``ge=1``, ``pattern=...``), as words after its type."""
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least this many:"}
    out = [f"{word} {getattr(m, name)}" for m in metadata for name, word in words.items() if hasattr(m, name)]
    patterns = [getattr(m, "pattern", None) for m in metadata]
    out += [f"matching `{pattern}`" for pattern in patterns if isinstance(pattern, str)]
    return ", " + ", ".join(out) if out else ""


def _description(info: FieldInfo, nested: Sequence[type[BaseModel]]) -> str:
    """The field's description; for a section without one, the first paragraph of its model's docstring."""
    if info.description:
        return info.description
    if len(nested) == 1:
        return docstring_of(nested[0]).split("\n\n")[0]
    return ""


def _flow(value: object) -> str:
    """A default as YAML flow text, as a file would write it."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if value != "" else '""'


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", by_alias=True)
        try:
            plain = type(value)().model_dump(mode="json", by_alias=True)
        except ValueError:  # a model with required keys: its default is all of it
            return f"`{_flow(dumped)}`"
        changed = {k: v for k, v in dumped.items() if plain.get(k) != v}
        return f"`{_flow(changed)}`, else as below" if changed else "as below"
    _, metadata = _strip_annotated(info.annotation, info.metadata)
    unit = _unit(metadata)
    if isinstance(value, int | float) and not isinstance(value, bool) and unit == "duration":
        return f"`{format_duration(value)}`"
    if isinstance(value, int) and not isinstance(value, bool) and unit == "size":
        return f"`{format_size(value)}`"
    return f"`{_flow(value)}`"


@dataclass(frozen=True)
class Union_:
    """A field holding one of several models told apart by a key (``storage``'s backend, a fault's action)."""

    key: str
    discriminator: str
    variants: tuple[type[BaseModel], ...]


def _rows(model: type[BaseModel], prefix: str, unions: list[Union_]) -> Iterator[str]:
    """One table row per key of ``model`` and, flattened under it, of every model it nests."""
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        annotation, metadata = _strip_annotated(info.annotation, info.metadata)
        kind = _type_text(annotation, metadata)
        nested = _models(annotation)
        item = get_args(annotation)[0] if get_origin(annotation) is list else None
        item_models = _models(item) if item is not None else []
        if info.discriminator or (item is not None and len(item_models) > 1):
            variants = tuple(item_models or nested)
            disc = info.discriminator if isinstance(info.discriminator, str) else _discriminator(variants)
            unions.append(Union_(key, disc, variants))
            kind = ("list of " if item_models else "") + f"mapping: one of the `{disc}` tables below"
        yield f"| `{key}` | {kind}{_limits(metadata)} | {_default(info)} | {cell(_description(info, nested))} |"
        if info.discriminator or len(item_models) > 1:
            continue
        if len(item_models) == 1:
            yield from _rows(item_models[0], f"{key}[].", unions)
        elif len(nested) == 1:
            yield from _rows(nested[0], f"{key}.", unions)


def _discriminator(variants: Sequence[type[BaseModel]]) -> str:
    """The key whose one literal value tells the variants apart (a list item's union carries it on the item)."""
    for name, info in variants[0].model_fields.items():
        if all(get_origin(v.model_fields[name].annotation) is Literal for v in variants if name in v.model_fields):
            return info.alias or name
    raise ValueError(f"no discriminator in {[v.__name__ for v in variants]}")


_HEADER = "| key | type | default | description |\n| --- | --- | --- | --- |"


def _table(model: type[BaseModel], prefix: str, unions: list[Union_]) -> str:
    return "\n".join([_HEADER, *_rows(model, prefix, unions)]) + "\n"


def _variant_value(model: type[BaseModel], discriminator: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or name) == discriminator:
            return str(get_args(info.annotation)[0])
    raise ValueError(f"{model.__name__} has no {discriminator}")


def scenario_page() -> str:
    """Every key of a scenario file: the top level, then each section flattened, one table per union member."""
    parts = [
        banner("the pydantic models of harness/scenario/"),
        "# Scenario file keys\n",
        note("the pydantic models of `harness/scenario/` (`harness.scenario.model.Scenario`)"),
        f"Every model refuses unknown keys. A *duration* is a number with a unit, one of {_units(DURATION_UNITS)} "
        f"(`30s`, `5m`); a *size* likewise, one of {_units(SIZE_UNITS)} (`k` is 1000, `Ki` 1024: `512Mi`, "
        "`2Gi`); a bare number is refused, except 0. Keys are written as dotted paths (`storage.claim.size`); `[]` "
        "stands for each item of a list (`loads.fio[].profile`). `harness schema` prints the same models as JSON "
        "Schema.\n",
        "## Top level\n",
    ]
    top = [_HEADER]
    sections: list[tuple[str, FieldInfo]] = []
    unions: list[Union_] = []
    for name, info in Scenario.model_fields.items():
        key = info.alias or name
        annotation, metadata = _strip_annotated(info.annotation, info.metadata)
        kind = _type_text(annotation, metadata)
        if _section_models(info):
            listed = get_origin(annotation) is list
            kind = ("list of " if listed else "") + f"mapping: see [`{key}`](#{key})"
            sections.append((key, info))
        nested = _models(annotation)
        top.append(f"| `{key}` | {kind}{_limits(metadata)} | {_default(info)} | {cell(_description(info, nested))} |")
    parts.append("\n".join(top) + "\n")
    for key, info in sections:
        parts.append(f"## `{key}`\n")
        models = _section_models(info)
        if len(models) > 1:
            disc = info.discriminator if isinstance(info.discriminator, str) else _discriminator(models)
            listed = get_origin(_strip_annotated(info.annotation)[0]) is list
            parts.append(_union_sections(Union_(f"{key}[]" if listed else key, disc, tuple(models)), unions))
            continue
        doc = docstring_of(models[0])
        parts.extend([f"{doc}\n"] if doc else [])
        parts.append(_table(models[0], f"{key}.", unions))
    while unions:  # unions nested below a section (none today): their tables after the sections
        parts.append(_union_sections(unions.pop(0), unions))
    return "\n".join(parts)


def _section_models(info: FieldInfo) -> list[type[BaseModel]]:
    """The models a top-level key holds (itself, or its list's items): one, or the members of a union."""
    annotation, _ = _strip_annotated(info.annotation, info.metadata)
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    return _models(annotation)


def _union_sections(union: Union_, unions: list[Union_]) -> str:
    out = [f"`{union.key}` is one of these, told apart by `{union.discriminator}`.\n"]
    for variant in union.variants:
        value = _variant_value(variant, union.discriminator)
        out.append(f"### `{union.discriminator}: {value}`\n")
        doc = docstring_of(variant)
        out.extend([f"{doc}\n"] if doc else [])
        out.append(_table(variant, f"{union.key}.", unions))
    return "\n".join(out)
