"""The configuration reference (``docs/config.md``), generated from the config models.

Every key of :class:`cpc_core.config.core.RunConfig` (and of its ``validation:`` section,
:class:`cpc_core.config.validation_options.ValidationConfig`) with its type, default, allowed values
and description, read from the pydantic fields themselves, so that the reference cannot drift
from what the validator accepts. ``cpc config reference`` prints it; a test checks that
``docs/config.md`` is its current output.

Secrets (a :class:`pydantic.SecretStr` field or a key that names a credential) show their type
and never a value.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from cpc_core.config.core import RunConfig, is_secret_key

__all__ = ["KeyDoc", "SectionDoc", "iter_keys", "iter_sections", "render_markdown"]

_NONE = type(None)


@dataclass(frozen=True)
class KeyDoc:
    """One configuration key, as the reference shows it."""

    key: str  #: dotted key, ``[]`` for an element of a list of sections
    type: str
    default: str
    allowed: str
    description: str
    secret: bool


@dataclass(frozen=True)
class SectionDoc:
    """A section (a nested model) and its keys."""

    key: str
    title: str  #: the model's docstring, first paragraph
    description: str  #: the description of the field that mounts it
    keys: tuple[KeyDoc, ...]


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not _NONE]
        nullable = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return Union[tuple(args)], nullable  # noqa: UP007 - rebuilt from parts
    return annotation, False


def _section_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field mounts, and whether it is a list of them."""
    inner, _ = _strip_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, False
    if get_origin(inner) is tuple:
        args = get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0], True
    return None, False


def _type_name(annotation: Any) -> str:
    inner, nullable = _strip_optional(annotation)
    text = _bare_type_name(inner)
    return f"{text} or null" if nullable else text


def _bare_type_name(t: Any) -> str:
    origin = get_origin(t)
    if origin is Annotated:
        return _bare_type_name(get_args(t)[0])
    if origin is Literal:
        return "choice"
    if origin is tuple:
        args = get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_bare_type_name(args[0])}"
        return "list"
    if origin is dict:
        return "mapping"
    if t is SecretStr:
        return "str (secret)"
    if t is dt.date:
        return "date (YYYY-MM-DD)"
    if t is Any:
        return "any"
    if isinstance(t, type):
        return t.__name__
    return str(t)


def _literal_choices(t: Any) -> list[Any]:
    inner, _ = _strip_optional(t)
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) is Literal:
        return list(get_args(inner))
    if get_origin(inner) is tuple:
        args = get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            return _literal_choices(args[0])
    return []


def _bounds(metadata: list[Any]) -> list[str]:
    out = []
    for m in metadata:
        for cls, attr, sym in ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<"),
                               (at.MinLen, "min_length", "at least"), (at.MaxLen, "max_length", "at most")):
            if isinstance(m, cls):
                value = getattr(m, attr)
                if attr in ("min_length", "max_length"):
                    out.append(f"{sym} {value} {'item' if value == 1 else 'items'}")
                else:
                    out.append(f"{sym} {_number(value)}")
    return out


def _element_bounds(annotation: Any) -> list[str]:
    # tuple[Annotated[int, Field(ge=.., le=..)], ...]: the bounds hold for each element
    inner, _ = _strip_optional(annotation)
    if get_origin(inner) is tuple:
        args = get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis and get_origin(args[0]) is Annotated:
            meta = []
            for m in get_args(args[0])[1:]:
                meta.extend(getattr(m, "metadata", [m]))
            found = _bounds(meta)
            return [f"each {b}" for b in found]
    return []


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 100_000:
        exp = value.bit_length() - 1
        if value == 1 << exp or value == (1 << exp) - 1:
            return f"2^{exp}" if value == 1 << exp else f"2^{exp}-1"
        return f"{value:,}".replace(",", "_")
    if isinstance(value, float):
        # 1e6 reads better as 1_000_000 than as 1000000.0; 1e-05 stays as Python writes it
        return _number(int(value)) if value.is_integer() and abs(value) >= 100_000 else repr(value)
    return str(value)


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _value(value.value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value else '""'
    return _number(value)


def _default(field: Any, secret: bool) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if secret and value not in (None, {}, ""):
        return "(secret, not shown)"
    return _value(value)


def _key_doc(key: str, name: str, field: Any) -> KeyDoc:
    inner, _ = _strip_optional(field.annotation)
    secret = inner is SecretStr or is_secret_key(name)
    allowed = []
    choices = _literal_choices(field.annotation)
    if choices:
        allowed.append(", ".join(_value(c) for c in choices))
    allowed += _bounds(list(field.metadata)) + _element_bounds(field.annotation)
    return KeyDoc(key=key, type=_type_name(field.annotation), default=_default(field, secret),
                  allowed="; ".join(allowed), description=(field.description or "").strip(), secret=secret)


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    # reST ``literal`` -> Markdown `literal`
    return " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`")


def iter_sections(model: type[BaseModel] = RunConfig, prefix: str = "",
                  description: str = "") -> Iterator[SectionDoc]:
    """Every section of ``model`` (itself first, then its nested sections, depth-first).

    Examples
    --------
    >>> [s.key for s in iter_sections()][:3]
    ['(top level)', 'synth', 'input']
    >>> next(k for s in iter_sections() for k in s.keys if k.key == "estimate.lag_h").default
    '0'
    """
    keys: list[KeyDoc] = []
    nested: list[tuple[type[BaseModel], str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub, many = _section_model(field.annotation)
        if sub is not None:
            nested.append((sub, f"{key}[]" if many else key, (field.description or "").strip()))
            continue
        keys.append(_key_doc(key, name, field))
    yield SectionDoc(key=prefix.rstrip(".") or "(top level)", title=_first_paragraph(model.__doc__),
                     description=description, keys=tuple(keys))
    for sub, key, desc in nested:
        yield from iter_sections(sub, f"{key}.", desc)


def iter_keys(model: type[BaseModel] = RunConfig) -> Iterator[KeyDoc]:
    """Every leaf key of ``model``, dotted (``validation.columns.commune``)."""
    for section in iter_sections(model):
        yield from section.keys


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(model: type[BaseModel] = RunConfig) -> str:
    """``docs/config.md``: one table per section, a row per key.

    The text is deterministic (no dates, no paths), so that a test can compare it with the
    file in the repository.
    """
    sections = [s for s in iter_sections(model)]
    n_keys = sum(len(s.keys) for s in sections)
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `cpc config reference` (cpc_core/config/reference.py) from the config models. "
        "Do not edit: change the models' descriptions and regenerate with "
        "`cpc config reference --out docs/config.md`. -->",
        "",
        f"Every key of a run configuration (`cpc run CONFIG`; {n_keys} keys in {len(sections) - 1} sections). "
        "Unknown keys are errors. A key left out takes its default; `null` means unset. "
        "`cpc config show CONFIG` prints the effective configuration, defaults filled in and secrets as `***`. "
        "Any key can be overridden on the command line with `--set section.key=value` (YAML value). "
        "Sections whose key ends in `[]` are lists of such mappings. "
        "Secrets show their type, never a value.",
        "",
    ]
    for s in sections:
        if s.key == "(top level)" and not s.keys:
            continue
        lines += ["## Top-level keys" if s.key == "(top level)" else f"## `{s.key}`", ""]
        lead = s.description[:1].upper() + s.description[1:] + "." if s.description else ""
        # the field's description and the model's docstring often say the same thing
        intro = s.title if lead.lower().rstrip(".") == s.title.lower().rstrip(".") else f"{lead} {s.title}".strip()
        if intro:
            lines += [_cell(intro), ""]
        if not s.keys:
            continue
        lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        for k in s.keys:
            name = k.key.rsplit(".", 1)[-1]
            lines.append(f"| `{name}` | {_cell(k.type)} | `{_cell(k.default)}` | {_cell(k.allowed) or ''} | "
                         f"{_cell(k.description)} |")
        lines.append("")
    return "\n".join(lines)
