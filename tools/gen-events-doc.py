#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate docs/events.md, the events reference, from the event Structs.

One section per kind, in the order of the ``Event`` union, grouped under
each module's docstring: the Struct's summary and a table of every field,
inherited ones included. A field's meaning is its entry in the
``Attributes:`` section of the nearest class in the MRO that documents it;
a field that none documents is an error, so no field lands undocumented.

    PYTHONPATH=python python3 tools/gen-events-doc.py [--check]

--check compares with docs/events.md instead of writing it (exit 1 when it
is stale).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "events.md"
STALE = "docs/events.md is stale: run `make docs`"

# Google-style section headings; a class's summary is what precedes the first
_SECTIONS = {"Args", "Attributes", "Example", "Examples", "Note", "Notes", "Properties", "Raises", "Returns"}
_HEADING = re.compile(r"^(\w+):$")
_ENTRY = re.compile(r"^(\w+): (.+)$")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


class DocError(Exception):
    """A Struct's documentation is incomplete or names a field it lacks."""


def _sections(doc: str) -> tuple[list[str], dict[str, list[str]]]:
    """The summary lines and each section's lines (dedented), of a cleaned docstring."""
    summary: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in doc.splitlines():
        m = _HEADING.match(line)
        if m and m[1] in _SECTIONS:
            current = sections.setdefault(m[1], [])
        elif current is None:
            summary.append(line)
        elif line and not line.startswith(" "):
            raise DocError(f"text after a section must be indented: {line!r}")
        else:
            current.append(line[4:])
    return summary, sections


def _paragraphs(lines: list[str]) -> list[str]:
    """Lines grouped into paragraphs, each joined into one line."""
    out: list[str] = []
    for block in "\n".join(lines).strip().split("\n\n"):
        if block.strip():
            out.append(" ".join(part.strip() for part in block.splitlines()))
    return out


def attributes(cls: type[Any]) -> dict[str, str]:
    """The ``Attributes:`` entries of a class's own docstring: field -> meaning.

    Raises:
        DocError: an entry is malformed, repeated or names no field of the class.
    """
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return {}
    _, sections = _sections(inspect.cleandoc(doc))
    entries: dict[str, list[str]] = {}
    name = ""
    for line in sections.get("Attributes", []):
        if not line.strip():
            continue
        if line.startswith(" "):
            if not name:
                raise DocError(f"{cls.__name__}: Attributes: continuation line before any entry: {line!r}")
            entries[name].append(line.strip())
            continue
        m = _ENTRY.match(line)
        if not m:
            raise DocError(f"{cls.__name__}: Attributes: expected 'field: meaning', got {line!r}")
        name = m[1]
        if name in entries:
            raise DocError(f"{cls.__name__}: Attributes: {name} is documented twice")
        if name not in getattr(cls, "__struct_fields__", ()):
            raise DocError(f"{cls.__name__}: Attributes: {name} is not a field of {cls.__name__}")
        entries[name] = [m[2].strip()]
    return {k: " ".join(v) for k, v in entries.items()}


def _documented_bases(cls: type[Any]) -> list[type[Any]]:
    """The Struct classes of cls's MRO, nearest first (msgspec's own left out)."""
    return [k for k in cls.__mro__ if issubclass(k, msgspec.Struct) and not k.__module__.startswith("msgspec")]


def field_meanings(cls: type[Any]) -> dict[str, str]:
    """Every field of a Struct, in declaration order, with its documented meaning.

    Raises:
        DocError: a field has no ``Attributes:`` entry in the class or its bases.
    """
    docs = [attributes(k) for k in _documented_bases(cls)]
    out: dict[str, str] = {}
    for field in cls.__struct_fields__:
        meaning = next((d[field] for d in docs if field in d), None)
        if meaning is None:
            raise DocError(
                f"{cls.__name__}.{field} is undocumented: add it to the Attributes: section of "
                f"{cls.__name__} or of the base that declares it"
            )
        out[field] = meaning
    return out


def type_name(t: Any) -> str:
    """A field type as a reader writes it: ``int``, ``bool | None``, ``list[str]``."""
    if t is type(None):
        return "None"
    args = typing.get_args(t)
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(t, type):
        return t.__name__
    return str(t)


def _md(text: str) -> str:
    """Docstring markup as Markdown for a table cell or a paragraph."""
    text = _ROLE.sub(r"`\1`", text).replace("``", "`")
    parts = text.split("`")
    for i, part in enumerate(parts):
        # in code spans only the table's pipe needs escaping
        parts[i] = part.replace("|", "\\|") if i % 2 else part.replace("*", "\\*").replace("|", "\\|")
    return "`".join(parts)


def _summary(obj: Any) -> list[str]:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    if not doc:
        raise DocError(f"{obj.__name__} has no docstring")
    summary, _ = _sections(inspect.cleandoc(doc))
    return _paragraphs(summary)


def _properties(cls: type[Any]) -> list[str]:
    """Public properties of a Struct (``kind`` aside), bases first, as list items."""
    seen: dict[str, str] = {}
    for klass in reversed(_documented_bases(cls)):
        for name, value in vars(klass).items():
            if not isinstance(value, property) or name.startswith("_") or name == "kind":
                continue
            if not value.__doc__:
                raise DocError(f"{cls.__name__}.{name}: property has no docstring")
            returns = typing.get_type_hints(value.fget).get("return")
            first = _paragraphs(inspect.cleandoc(value.__doc__).splitlines())[0]
            seen[name] = f"- `{name}` (`{type_name(returns)}`): {_md(first)}"
    return list(seen.values())


def kind_section(cls: type[Any]) -> str:
    """The reference section of one event Struct: heading, summary, field table, properties.

    Raises:
        DocError: a field is undocumented, or the Struct has no tag.
    """
    kind = cls.__struct_config__.tag
    if not isinstance(kind, str):
        raise DocError(f"{cls.__name__} has no string tag: every event Struct is tagged with its kind")
    meanings = field_meanings(cls)
    hints = typing.get_type_hints(cls)
    lines = [f"### `{kind}`: `{cls.__name__}`", ""]
    for para in _summary(cls):
        lines += [_md(para), ""]
    lines += ["| field | type | meaning |", "| --- | --- | --- |"]
    for field, meaning in meanings.items():
        lines.append(f"| `{field}` | `{_md(type_name(hints[field]))}` | {_md(meaning)} |")
    props = _properties(cls)
    if props:
        lines += ["", "Properties (computed in Python, not encoded):", "", *props]
    return "\n".join(lines) + "\n"


def _group(module: types.ModuleType) -> str:
    paras = _summary(module)
    out = [f"## {_md(paras[0].removesuffix('.'))}", ""]
    for para in paras[1:]:
        out += [_md(para), ""]
    return "\n".join(out)


_INTRO = """\
<!-- Generated by tools/gen-events-doc.py from python/ebpfsensor/events/: do not edit by hand, run `make docs`. -->
# Events reference

Every field of every event kind, generated from the event Structs' docstrings by
`tools/gen-events-doc.py`; a unit test fails when this file is stale (`make docs` regenerates it).

Events are frozen msgspec Structs. Every event carries its kind as the tag `kind`: in JSON and
msgpack an event is an object with `"kind": "<kind>"` and then its fields, in the order of the
tables below (`{"kind": "process_exec", "ts_ns": ..., ...}`); in Python it is `event.kind`, and
`ebpfsensor.events.event_class(kind)` gives the Struct. Timestamps are CLOCK_BOOTTIME
nanoseconds (`ebpfsensor.events.boot_to_wall_ns` converts them). Strings that are not valid UTF-8
in the kernel carry the surrogateescape convention: `os.fsencode(value)` gives the kernel's bytes.
"""


def generate() -> str:
    """The whole of docs/events.md.

    Raises:
        DocError: an event Struct has an undocumented field.
    """
    from ebpfsensor.events import Event

    out = [_INTRO]
    module = None
    for cls in typing.get_args(Event):
        if cls.__module__ != module:
            module = cls.__module__
            out.append(_group(sys.modules[module]))
        out.append(kind_section(cls))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/events.md from the event Structs.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/events.md differs instead of writing it")
    args = parser.parse_args(argv)
    try:
        text = generate()
    except DocError as e:
        print(f"gen-events-doc: {e}", file=sys.stderr)
        return 1
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(STALE, file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
