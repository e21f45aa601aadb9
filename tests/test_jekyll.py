"""Debian's Jekyll builds archive/site/ without errors, and puts every post where the plain-HTML site does."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.models import Config
from aggregator.site import write_site
from aggregator.store import Archive

from .sitehelpers import cst, make_entry, store
from .test_site import HOSTILE_TITLES

pytestmark = pytest.mark.skipif(
    shutil.which("jekyll") is None, reason="jekyll is not installed (apt-get install jekyll)"
)


def test_jekyll_builds_every_post_and_category_page(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(
        [{"url": "https://source.example.com/feed.xml", "category": "news"}],
        categories={"news": {"title": "新闻"}, "empty": {"title": "Nothing yet"}},
        site_timezone="Asia/Shanghai",
    )
    entries = [make_entry(title, f"h{n}", cst(2024, 3, 1, 12, 0, n)) for n, title in enumerate(HOSTILE_TITLES)]
    # Late evening in New York is the next day in Shanghai: the URL date follows the site's zone.
    new_york = timezone(-timedelta(hours=5))
    entries.append(make_entry("Late edition", "late", datetime(2024, 3, 1, 23, 30, tzinfo=new_york)))
    entries.append(
        make_entry("{{ liquid }} {% if %}", "liquid", cst(2024, 3, 2, 8, 0, 0), "<p>{{ x }} {% endif %}</p>")
    )
    store(config, entries, "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    site = config.settings.archive_dir / "site"
    out = tmp_path / "_site"
    result = subprocess.run(
        ["jekyll", "build", "--source", str(site), "--destination", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()
    public = config.settings.archive_dir / "public"
    expected = {p.relative_to(public) for p in public.rglob("*.html") if "page" not in p.relative_to(public).parts}
    built = {p.relative_to(out) for p in out.rglob("*.html")}
    assert expected == built
    assert (site / "_posts" / "2024-03-01-late-edition.md").is_file()  # the file name: the source's own day
    assert (out / "news" / "2024" / "03" / "02" / "late-edition.html").is_file()
    liquid = next((out / "news" / "2024" / "03" / "02").glob("liquid*.html")).read_text(encoding="utf-8")
    assert "{{ x }} {% endif %}" in liquid
    for title in ("新闻", "Nothing yet"):
        assert title in (out / "index.html").read_text(encoding="utf-8")
    assert "Late edition" in (out / "category" / "news.html").read_text(encoding="utf-8")
