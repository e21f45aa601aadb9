"""`aggregator opml import|export`: OPML 2.0 folders <-> categories, parsed safely."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from aggregator.cli.commands import main
from aggregator.configuration.load import load_config
from tests.store.test_search import sample_config  # noqa: F401  (fixture)

BASE_YAML = """\
# Subscriptions
categories:
  tech:
    title: Engineering   # shown on the site
feeds:
  - url: https://a.example/feed.xml
    category: tech
"""

READER_OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>From my reader</title></head>
  <body>
    <outline text="Engineering">
      <outline type="rss" text="A again" xmlUrl="https://a.example/feed.xml"/>
      <outline type="rss" text="B blog" xmlUrl="https://b.example/rss"/>
    </outline>
    <outline text="中国税务报新闻" title="中国税务报新闻">
      <outline type="rss" text="税务" xmlUrl="https://c.example/tax.xml" htmlUrl="https://c.example/"/>
      <outline text="Nested folder">
        <outline type="rss" text="Deep" xmlUrl="https://d.example/deep.xml"/>
      </outline>
    </outline>
    <outline type="rss" text="Loose" xmlUrl="https://e.example/loose.xml"/>
    <outline type="rss" text="Bad" xmlUrl="javascript:alert(1)"/>
  </body>
</opml>
"""


def run(config: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_import_maps_folders_to_categories(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(BASE_YAML, "utf-8")
    opml = tmp_path / "list.opml"
    opml.write_text(READER_OPML, "utf-8")
    code, _out, err = run(config, "opml", "import", str(opml))
    assert code == 0, err
    assert "skipped https://a.example/feed.xml: already configured" in err
    assert "skipped https://e.example/loose.xml: outside any folder" in err
    assert "skipped javascript:alert(1): unsupported URL scheme 'javascript'" in err
    loaded = load_config(config)
    assert {f.url: f.category for f in loaded.feeds} == {
        "https://a.example/feed.xml": "tech",
        "https://b.example/rss": "tech",  # folder title matched an existing category's title
        "https://c.example/tax.xml": "zhong-guo-shui-wu-bao-xin-wen",
        "https://d.example/deep.xml": "nested-folder",
    }
    assert loaded.categories["zhong-guo-shui-wu-bao-xin-wen"].title == "中国税务报新闻"
    text = config.read_text("utf-8")
    assert text.startswith("# Subscriptions\ncategories:\n  tech:\n    title: Engineering   # shown on the site\n")
    # Importing again adds nothing.
    code, _out, err = run(config, "opml", "import", str(opml))
    assert code == 0 and "nothing to import" in err
    assert config.read_text("utf-8") == text


def test_import_into_one_category_from_stdin_and_dry_run(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(BASE_YAML, "utf-8")
    code, _out, err = run(config, "opml", "import", "-", "--category", "tech", "--dry-run", stdin=READER_OPML.encode())
    assert code == 0 and "dry run: 4 feeds would be added" in err
    assert config.read_text("utf-8") == BASE_YAML
    assert run(config, "opml", "import", "-", "--category", "tech", stdin=READER_OPML.encode())[0] == 0
    assert {f.category for f in load_config(config).feeds} == {"tech"}
    assert len(load_config(config).feeds) == 5


def test_hostile_or_broken_opml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(BASE_YAML, "utf-8")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        '<opml version="2.0"><body><outline text="&b;" xmlUrl="https://x.example/"/></body></opml>'
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<opml version="2.0"><body><outline text="&x;" xmlUrl="https://x.example/"/></body></opml>'
    )
    for document, message in [
        (bomb, "not a readable OPML file"),
        (external, "not a readable OPML file"),
        ("<opml><body><outline", "not a readable OPML file"),
        ('<rss version="2.0"/>', "not an OPML file"),
    ]:
        code, _out, err = run(config, "opml", "import", "-", stdin=document.encode())
        assert code == 2 and message in err and "Traceback" not in err, err
    assert config.read_text("utf-8") == BASE_YAML


def test_export_round_trips_into_an_empty_config(sample_config: Path, tmp_path: Path) -> None:  # noqa: F811
    code, out, _err = run(sample_config, "opml", "export")
    assert code == 0
    root = etree.fromstring(out.encode("utf-8"))
    assert root.get("version") == "2.0"
    folders = root.findall("body/outline")
    assert [f.get("text") for f in folders] == ["Engineering", "Nachrichten", "中国税务报新闻"]
    tax = folders[2].find("outline")
    assert tax is not None and tax.get("title") == "中国税务报新闻"  # the feed's own title, from the archive
    assert tax.get("htmlUrl") == "http://finews.zning.xyz/"
    empty = tmp_path / "other" / "feeds.yaml"
    empty.parent.mkdir()
    empty.write_text("feeds: []\n", "utf-8")
    code, _out, err = run(empty, "opml", "import", "-", stdin=out.encode("utf-8"))
    assert code == 0, err
    original, copy = load_config(sample_config), load_config(empty)
    assert {f.url: f.category for f in copy.feeds} == {f.url: f.category for f in original.feeds}
    assert {s: c.title for s, c in copy.categories.items()} == {s: c.title for s, c in original.categories.items()}


def test_a_round_trip_keeps_titles_as_they_were_and_disabled_feeds_disabled(tmp_path: Path) -> None:
    # Exported titles are the feeds' own (or their URL when none is known yet): importing them back must
    # not turn them into `title:` overrides that freeze them. An operator's override and a disabled
    # feed come back as they were.
    source = tmp_path / "feeds.yaml"
    source.write_text(
        "categories:\n  tech: {title: Engineering}\nfeeds:\n"
        "  - url: https://a.example/feed.xml\n    category: tech\n"
        "  - url: https://b.example/rss\n    category: tech\n    title: My name for B\n"
        "  - url: https://c.example/off.xml\n    category: tech\n    enabled: false\n",
        "utf-8",
    )
    code, exported, err = run(source, "opml", "export")
    assert code == 0, err
    target = tmp_path / "other" / "feeds.yaml"
    target.parent.mkdir()
    target.write_text("feeds: []\n", "utf-8")
    code, _out, err = run(target, "opml", "import", "-", stdin=exported.encode("utf-8"))
    assert code == 0, err
    feeds = {f.url: (f.title, f.enabled) for f in load_config(target).feeds}
    assert feeds == {
        "https://a.example/feed.xml": (None, True),
        "https://b.example/rss": ("My name for B", True),
        "https://c.example/off.xml": (None, False),
    }


def test_shared_titles_gbk_files_and_broken_urls(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "categories:\n  news-de:\n    title: News\n  news-en:\n    title: News\n"
        "feeds:\n  - url: https://de.example/f\n    category: news-de\n  - url: https://en.example/f\n"
        "    category: news-en\n",
        "utf-8",
    )
    code, exported, _err = run(config, "opml", "export")
    assert code == 0
    empty = tmp_path / "other" / "feeds.yaml"
    empty.parent.mkdir()
    empty.write_text("feeds: []\n", "utf-8")
    code, _out, err = run(empty, "opml", "import", "-", stdin=exported.encode())
    assert code == 0, err
    # Two categories with one title stay two: our export's slugs decide.
    assert {f.url: f.category for f in load_config(empty).feeds} == {
        "https://de.example/f": "news-de",
        "https://en.example/f": "news-en",
    }
    gbk = (
        '<?xml version="1.0" encoding="GBK"?><opml version="2.0"><body><outline text="新闻">'
        '<outline text="税务" xmlUrl="https://gbk.example/f"/>'
        '<outline text="Broken" xmlUrl="http://[::1/feed"/></outline></body></opml>'
    ).encode("gbk")
    code, out, err = run(empty, "opml", "import", "-", stdin=gbk)
    assert code == 0 and "Traceback" not in err, err
    assert "http://[::1/feed: not a valid URL" in out + err
    feeds = {f.url: f.category for f in load_config(empty).feeds}
    assert feeds["https://gbk.example/f"] == "xin-wen" and load_config(empty).categories["xin-wen"].title == "新闻"
