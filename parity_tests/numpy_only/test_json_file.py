"""The one JSON writer (``reports.json_file``): its format, and that a document which cannot be
serialized, or a write that fails, leaves no file and no temporary file behind."""

from __future__ import annotations

import json
import math

import pytest

from reports.json_file import json_bytes, write_json
from scratch.errors import ParityError


def test_written_document_reads_back_with_utf8_and_a_trailing_newline(tmp_path):
    document = {"name": "Δ ε", "values": [1, 0.5, None], "nested": {"b": 2, "a": 1}}
    path = write_json(tmp_path / "sub" / "out.json", document)
    raw = path.read_bytes()
    assert raw.endswith(b"}\n") and not raw.endswith(b"\n\n")
    assert "Δ ε".encode() in raw, "non-ASCII written as itself, not as \\u escapes"
    assert json.loads(raw.decode("utf-8")) == document
    assert list(json.loads(raw)["nested"]) == ["b", "a"], "insertion order kept"
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, object(), {1, 2}],
                         ids=["nan", "inf", "-inf", "object", "set"])
def test_unserializable_document_leaves_no_file_and_no_temp_file(tmp_path, bad):
    path = tmp_path / "out.json"
    with pytest.raises(ValueError, match=r"out\.json: not written: the document is not valid JSON"):
        write_json(path, {"ok": 1, "bad": [bad]})
    assert list(tmp_path.iterdir()) == []


def test_unserializable_document_keeps_the_previous_file(tmp_path):
    path = write_json(tmp_path / "out.json", {"run": 1})
    with pytest.raises(ValueError):
        write_json(path, {"run": math.nan})
    assert json.loads(path.read_text(encoding="utf-8")) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_is_a_project_error_naming_the_path_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ParityError, match=r"out\.json: cannot write \(Permission denied\)"):
        write_json(tmp_path / "out.json", {"run": 1})
    assert list(tmp_path.iterdir()) == []


def test_json_bytes_is_what_write_json_writes(tmp_path):
    document = {"a": [1.5, -2], "b": "x"}
    assert write_json(tmp_path / "d.json", document).read_bytes() == json_bytes(document, "d.json")
