# SPDX-License-Identifier: Apache-2.0
"""docs/events.md is generated from the event Structs and must match them."""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from ebpfsensor.events import Event
from ebpfsensor.events._kinds import kind_of

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_events_doc", ROOT / "tools" / "gen-events-doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def test_events_doc_is_current() -> None:
    assert DOC.read_text() == gen.generate(), "docs/events.md is stale: run `make docs`"


def test_every_field_of_every_kind_is_in_its_table() -> None:
    text = DOC.read_text()
    for cls in typing.get_args(Event):
        heading = f"### `{kind_of(cls)}`: `{cls.__name__}`"
        assert heading in text, f"no section for {cls.__name__}"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        rows = re.findall(r"^\| `(\w+)` \| `[^`]+` \| (.+) \|$", section, re.MULTILINE)
        assert [name for name, _ in rows] == list(cls.__struct_fields__), cls.__name__
        assert all(meaning.strip() for _, meaning in rows), cls.__name__


def test_inherited_meaning_comes_from_the_nearest_class() -> None:
    from ebpfsensor.events import FileOpen, ProcessExec, Setsid

    assert gen.field_meanings(Setsid)["result"] == "the new session id, or -EPERM."
    assert gen.field_meanings(FileOpen)["result"].startswith("the new fd, or -errno. With the ``fentry`` variant")
    assert gen.field_meanings(ProcessExec)["ts_ns"].startswith("when the event was recorded")


def test_type_names_read_as_written() -> None:
    assert [gen.type_name(t) for t in (int, str, bool, bytes, float)] == ["int", "str", "bool", "bytes", "float"]
    assert gen.type_name(bool | None) == "bool | None"
    assert gen.type_name(list[str]) == "list[str]"


class _Documented(msgspec.Struct, frozen=True, tag="documented"):
    """A test event.

    Attributes:
        a: the first field.
        b: the second field, over
            two lines.
    """

    a: int
    b: bool | None


class _Undocumented(msgspec.Struct, frozen=True, tag="undocumented"):
    """A test event whose second field has no entry.

    Attributes:
        a: the first field.
    """

    a: int
    b: str


class _Stale(msgspec.Struct, frozen=True, tag="stale"):
    """A test event that documents a field it lacks.

    Attributes:
        a: the first field.
        gone: a field that was removed.
    """

    a: int


def test_section_of_a_documented_struct() -> None:
    section = gen.kind_section(_Documented)
    assert section.startswith("### `documented`: `_Documented`\n\nA test event.\n")
    assert "| `a` | `int` | the first field. |" in section
    assert "| `b` | `bool \\| None` | the second field, over two lines. |" in section


def test_undocumented_field_is_refused() -> None:
    with pytest.raises(gen.DocError, match=r"_Undocumented\.b is undocumented"):
        gen.kind_section(_Undocumented)


def test_entry_for_a_missing_field_is_refused() -> None:
    with pytest.raises(gen.DocError, match="gone is not a field of _Stale"):
        gen.kind_section(_Stale)


def test_check_reports_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.md"
    monkeypatch.setattr(gen, "OUT", out)
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().err == "docs/events.md is stale: run `make docs`\n"
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert out.read_text() == DOC.read_text()
