"""`aggregator export`: the archive as JSON Lines or CSV on stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from aggregator.cli.commands import main
from aggregator.store.export import spreadsheet_cell
from tests.store.test_search import sample_config  # noqa: F401  (fixture)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_jsonl_keeps_text_and_offsets(sample_config: Path) -> None:  # noqa: F811
    code, out, err = run(sample_config, "export")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert f"exported {len(rows)} entries" in err
    assert len(rows) == 8
    published = [r["published"] for r in rows]
    tax = next(r for r in rows if r["title"] == "“四维”发力 确保征管改革见成效")
    assert tax["published"] == "2022-03-16T08:54:16+08:00"
    assert tax["tags"] == ["中国税务报新闻"] and tax["category"] == "zhongguoshuiwubao"
    assert "征管改革" in tax["summary"] + tax["content"]
    assert published[0].startswith("2024-03-06")  # newest first


def test_csv_with_category_and_since(sample_config: Path) -> None:  # noqa: F811
    code, out, _err = run(sample_config, "export", "--format", "csv", "--category", "zhongguoshuiwubao")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3 and {r["category"] for r in rows} == {"zhongguoshuiwubao"}
    assert json.loads(rows[0]["tags"]) == ["中国税务报新闻"]
    code, out, _err = run(sample_config, "export", "--format", "csv", "--since", "2022-03-15T12:00:00+0800")
    titles = [r["title"] for r in csv.DictReader(io.StringIO(out))]
    assert "留抵退税政策落地见效" not in titles and "“四维”发力 确保征管改革见成效" in titles


def test_bad_options_are_one_line(sample_config: Path) -> None:  # noqa: F811
    code, _out, err = run(sample_config, "export", "--since", "yesterday")
    assert code == 2 and "Invalid value for '--since'" in err
    code, _out, err = run(sample_config, "export", "--category", "nope")
    assert code == 2 and "unknown category 'nope'" in err


def test_csvspreadsheet_cell(sample_config: Path) -> None:  # noqa: F811
    # Excel reads a CSV without a byte order mark in the machine's code page (CJK comes out garbled) and
    # runs a cell starting with "=" as a formula: --excel writes the mark and defuses such cells.
    plain_code, plain, _err = run(sample_config, "export", "--format", "csv")
    code, excel, _err = run(sample_config, "export", "--format", "csv", "--excel")
    assert plain_code == code == 0 and excel == "\ufeff" + plain  # the sample has no formula-like cell
    assert spreadsheet_cell('=HYPERLINK("http://evil","x")') == '\'=HYPERLINK("http://evil","x")'
    assert [spreadsheet_cell(v) for v in ("@x", "+1", "-1", "\tx", "税务", 3)] == [
        "'@x",
        "'+1",
        "'-1",
        "'\tx",
        "税务",
        3,
    ]
    code, _out, err = run(sample_config, "export", "--excel")
    assert code == 2 and "--excel is for --format csv" in err
