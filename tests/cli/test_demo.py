"""`aggregator demo` runs the whole main job offline and shows what it stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from aggregator.cli.commands import main


def test_demo_archives_the_bundled_samples(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "8 new entries" in result.output
    assert "[zhongguoshuiwubao] 2022-03-16 08:54:16 +0800  “四维”发力 确保征管改革见成效" in result.output
    database = tmp_path / "archive" / "aggregator.db"
    assert f"Database: {database}" in result.output
    with sqlite3.connect(database) as db:
        formats = {row[0] for row in db.execute("SELECT format FROM feeds")}
        assert formats == {"RSS 2.0", "Atom 1.0"}
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 8


def test_demo_never_writes_over_an_operators_archive(tmp_path: Path) -> None:
    own = "settings:\n  archive_dir: archive\nfeeds: []\n"
    (tmp_path / "feeds.yaml").write_text(own, encoding="utf-8")
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {tmp_path} already holds a feeds.yaml or an archive/ the demo did not")
    assert (tmp_path / "feeds.yaml").read_text(encoding="utf-8") == own
    assert not (tmp_path / "archive").exists()
    # A folder an earlier demo made may be used again.
    again = tmp_path / "again"
    for _ in range(2):
        result = CliRunner().invoke(main, ["demo", "--dir", str(again)])
        assert result.exit_code == 0, result.output
