"""curated.yaml as a careless or hostile depositor writes it: duplicate keys, YAML 1.1 surprises, tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curated._io import dump_yaml_text, load_mapping, parse_yaml
from curated.cli import app
from curated.errors import DepositError, MetadataError

runner = CliRunner()


def _write(tmp_path: Path, text: str, name: str = "curated.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    p = _write(tmp_path, "study:\n  title: Mine\n  description: d\n  title: Theirs\n")
    with pytest.raises(MetadataError) as info:
        load_mapping(p)
    msg = str(info.value)
    assert "'title' is given twice" in msg and "first at line 2" in msg and "line 4" in msg
    assert str(p) in msg


def test_a_key_given_twice_in_json_is_refused(tmp_path):
    p = _write(tmp_path, '{"study": {"title": "a", "title": "b"}}', "record.json")
    with pytest.raises(MetadataError, match="'title' is given twice"):
        load_mapping(p)


def test_validate_refuses_a_duplicate_key_and_writes_nothing(tmp_path):
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), "--title", "t"]).exit_code == 0
    meta = ws / "curated.yaml"
    meta.write_text(meta.read_text() + "study:\n  title: overwritten\n")
    before = meta.read_bytes()
    for args in (
        ["metadata", "validate", str(ws)],
        ["metadata", "set", str(ws), "study.title", "x"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "given twice" in " ".join(result.output.split())
    assert meta.read_bytes() == before


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("no", "no"),
        ("Yes", "Yes"),
        ("off", "off"),
        ("2024-01-02", "2024-01-02"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("1:20", "1:20"),
        ("1_000", "1_000"),
        ("=", "="),
        ("true", True),
        ("null", None),
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        ("1e3", 1000.0),
        ("-.inf", float("-inf")),
    ],
)
def test_plain_scalars_read_as_yaml_1_2_says(tmp_path, written, read):
    data = load_mapping(_write(tmp_path, f"study:\n  title: {written}\n"))
    assert data["study"]["title"] == read
    assert type(data["study"]["title"]) is type(read)


@pytest.mark.parametrize(
    "text",
    [
        "study:\n  title: !!binary aGVsbG8=\n",
        "study:\n  title: !!set {a, b}\n",
        "study:\n  title: !!timestamp 2024-01-02\n",
        "study: !!python/object/apply:os.system [echo]\n",
        "base: &b {title: x}\nstudy:\n  <<: *b\n",
    ],
)
def test_tags_beyond_the_core_schema_and_merge_keys_are_refused(tmp_path, text):
    with pytest.raises(MetadataError, match=r"YAML error at line \d+"):
        load_mapping(_write(tmp_path, text))


def test_keys_are_the_text_written(tmp_path):
    data = load_mapping(_write(tmp_path, "1: a\nnull: b\ntrue: c\n"))
    assert data == {"1": "a", "null": "b", "true": "c"}
    json.dumps(data, sort_keys=True)  # mixed int/str keys made canonical JSON fail


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path):
    p = tmp_path / "curated.yaml"
    p.write_bytes("study:\n  title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(MetadataError, match=r"byte 0xe9 at line 2, column 13"):
        load_mapping(p)


def test_a_byte_order_mark_is_dropped(tmp_path):
    p = tmp_path / "record.json"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"study": {"title": "t"}}')
    assert load_mapping(p) == {"study": {"title": "t"}}


def test_text_curated_writes_reads_back_as_text_in_any_yaml_reader():
    words = ["no", "on", "1e3", "0o17", "1:20", "2024-01-02", "010", "0x1F", "+5", "1.", "<<"]
    record = {"study": {"keywords": words, "title": "t"}, "n": [1, 1.5, True, None]}
    text = dump_yaml_text(record)
    assert parse_yaml(text) == record
    assert yaml.safe_load(text) == record  # a YAML 1.1 reader (PyYAML) agrees


def test_quote_hint_gives_the_number_as_the_depositor_wrote_it(tmp_path):
    p = _write(
        tmp_path,
        "schema_version: 1.0.0\nstudy:\n  title: t\n  rembi_version: 1.10\n"
        "  funding:\n    - funder: ERC\n      award_id: 0123\n",
    )
    result = runner.invoke(app, ["metadata", "validate", str(p)])
    out = " ".join(result.output.split())
    assert "write it in quotes ('0123')" in out
    assert "write it in quotes ('1.10')" in out


def test_a_bags_record_is_read_with_the_same_checks(tmp_path):
    from curated.deposit.payload import open_bag

    bag = tmp_path / "bag"
    (bag / "metadata").mkdir(parents=True)
    (bag / "metadata" / "curated.yaml").write_text("study:\n  title: a\n  title: b\n")
    with pytest.raises(DepositError, match="given twice"):
        open_bag(bag, validate=False)
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    ]
    (bag / "metadata" / "curated.yaml").write_text("\n".join(bomb) + "\n")
    with pytest.raises(DepositError, match="aliases"):
        open_bag(bag, validate=False)
