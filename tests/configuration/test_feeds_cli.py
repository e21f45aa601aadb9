"""`aggregator feeds list|add|remove|enable|disable`: feeds.yaml edits that keep comments and layout."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from aggregator.cli.commands import main
from aggregator.configuration.load import load_config
from tests.feeds import item, rss

FEEDS_YAML = """\
# My feeds: keep this comment.
settings:
  archive_dir: archive   # next to this file
  publish: false

categories:
  tech:
    title: Engineering
  zhongguoshuiwubao:
    title: 中国税务报新闻
    tags: [中国税务报新闻]

feeds:
  # --- engineering ---
  - url: https://a.example/feed.xml   # the first one
    category: tech

  # A Chinese source.
  - url: https://b.example/rss.xml
    category: zhongguoshuiwubao
    enabled: false

  # Last, with a comment after it.
  - url: https://c.example/atom.xml
    category: tech
# end of feeds
"""


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def feeds_file(tmp_path: Path, text: str = FEEDS_YAML) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_list_text_and_json(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    code, out, err = run(path, "feeds", "list")
    assert code == 0 and "[zhongguoshuiwubao] https://b.example/rss.xml  (disabled)" in out and "3 feeds" in err
    code, out, _ = run(path, "feeds", "list", "--json", "--category", "zhongguoshuiwubao")
    assert json.loads(out) == [
        {
            "url": "https://b.example/rss.xml",
            "category": "zhongguoshuiwubao",
            "title": None,
            "enabled": False,
            "tags": ["中国税务报新闻"],
            "interval": None,
        }
    ]


def test_add_without_discovery_appends_after_the_last_feed(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    code, _out, err = run(
        path,
        "feeds",
        "add",
        "https://d.example/x.xml",
        "--category",
        "tech",
        "--no-discover",
        "--title",
        'D: a "quoted" title',
    )
    assert code == 0, err
    text = path.read_text("utf-8")
    assert text.startswith(FEEDS_YAML.split("# end of feeds")[0])  # everything before is untouched
    assert text.endswith(
        '  - url: https://d.example/x.xml\n    category: tech\n    title: "D: a \\"quoted\\" title"\n# end of feeds\n'
    )
    feed = load_config(path).feeds[-1]
    assert (feed.url, feed.title) == ("https://d.example/x.xml", 'D: a "quoted" title')


def test_remove_keeps_the_neighbours_comments(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    code, _out, err = run(path, "feeds", "remove", "https://b.example/rss.xml")
    assert code == 0, err
    assert path.read_text("utf-8") == FEEDS_YAML.replace(
        "  - url: https://b.example/rss.xml\n    category: zhongguoshuiwubao\n    enabled: false\n", ""
    )


def test_enable_and_disable_touch_only_one_line(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    assert run(path, "feeds", "enable", "https://b.example/rss.xml")[0] == 0
    assert path.read_text("utf-8") == FEEDS_YAML.replace("    enabled: false\n", "")
    assert run(path, "feeds", "disable", "https://c.example/atom.xml")[0] == 0
    expected = FEEDS_YAML.replace("    enabled: false\n", "").replace(
        "c.example/atom.xml\n    category: tech\n", "c.example/atom.xml\n    category: tech\n    enabled: false\n"
    )
    assert path.read_text("utf-8") == expected
    code, _out, err = run(path, "feeds", "disable", "https://c.example/atom.xml")
    assert code == 0 and "already disabled" in err
    assert [f.enabled for f in load_config(path).feeds] == [True, True, False]


def test_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    for args, message in [
        (("feeds", "add", "https://a.example/feed.xml", "--category", "tech", "--no-discover"), "already configured"),
        # Said before any download: this host does not exist, and discovery would fail on it first.
        (("feeds", "add", "https://A.example:443/feed.xml", "--category", "tech"), "already configured"),
        (("feeds", "add", "https://x.example/f", "--category", "nope", "--no-discover"), "unknown category 'nope'"),
        (("feeds", "add", "ftp://x.example/f", "--category", "tech", "--no-discover"), "unsupported URL scheme"),
        (("feeds", "add", "http://[::1", "--category", "tech", "--no-discover"), "not a valid URL"),
        (("feeds", "add", "http://127.0.0.1:99999/x", "--category", "tech", "--no-discover"), "not a valid URL"),
        (("feeds", "add", "http://exa mple.com/f", "--category", "tech", "--no-discover"), "host contains a space"),
        (("feeds", "remove", "https://missing.example/"), "no feed 'https://missing.example/'"),
    ]:
        code, _out, err = run(path, *args)
        assert code == 2 and message in err, (args, err)
        assert "Traceback" not in err
    assert path.read_text("utf-8") == FEEDS_YAML


def test_add_discovers_the_feed_of_a_web_page(tmp_path: Path, httpserver: HTTPServer) -> None:
    page = """<!doctype html><html><head><title>Blog</title>
      <link rel="alternate" type="application/atom+xml" title="Atom" href="/feeds/atom.xml">
      <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
      <link rel="alternate" type="application/rss+xml" title="RSS" href="rss.xml">
      </head><body>hello</body></html>"""
    httpserver.expect_request("/blog/").respond_with_data(page, content_type="text/html; charset=utf-8")
    httpserver.expect_request("/plain.xml").respond_with_data(rss([item(1)]), content_type="text/xml")
    httpserver.expect_request("/nolinks").respond_with_data("<html><body>none</body></html>", content_type="text/html")
    path = feeds_file(tmp_path)
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/blog/"), "--category", "tech")
    assert code == 0, err
    assert f"discovered {httpserver.url_for('/feeds/atom.xml')}" in err
    assert f"also offered: {httpserver.url_for('/blog/rss.xml')}" in err and "javascript" not in err
    # A feed URL is added as it is.
    assert run(path, "feeds", "add", httpserver.url_for("/plain.xml"), "--category", "tech")[0] == 0
    assert [f.url for f in load_config(path).feeds][-2:] == [
        httpserver.url_for("/feeds/atom.xml"),
        httpserver.url_for("/plain.xml"),
    ]
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/nolinks"), "--category", "tech")
    assert code == 1 and "no feed found" in err


def test_adding_to_a_file_without_feeds(tmp_path: Path) -> None:
    path = feeds_file(tmp_path, "categories:\n  tech:\n    title: T\nfeeds: []   # none yet\n")
    assert run(path, "feeds", "add", "https://a.example/f", "--category", "tech", "--no-discover")[0] == 0
    assert path.read_text("utf-8") == (
        "categories:\n  tech:\n    title: T\nfeeds:  # none yet\n  - url: https://a.example/f\n    category: tech\n"
    )
    assert run(path, "feeds", "remove", "https://a.example/f")[0] == 0
    assert load_config(path).feeds == ()


def test_titles_that_yaml_would_misread_are_quoted(tmp_path: Path) -> None:
    path = feeds_file(tmp_path)
    titles = ["Release Notes:", "1.0", "0x10", "two\nlines", "yes"]
    for number, title in enumerate(titles):
        code, _out, err = run(path, "feeds", "add", f"https://t{number}.example/f", "--category", "tech",
                              "--title", title, "--no-discover")  # fmt: skip
        assert code == 0, (title, err)
    configured = {feed.url: feed.title for feed in load_config(path).feeds}
    assert [configured[f"https://t{number}.example/f"] for number in range(len(titles))] == titles


def test_discovery_checks_ambiguous_links_reads_chinese_pages_and_explains_refusals(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    wordpress = """<!doctype html><html><head>
      <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
      <link rel="alternate" type="application/rss+xml" href="/feed/">
      </head></html>"""
    httpserver.expect_request("/wp/").respond_with_data(wordpress, content_type="text/html")
    httpserver.expect_request("/wp-json/wp/v2/pages/2").respond_with_json({"id": 2, "title": "About"})
    chinese = (
        '<html><head><meta charset="gbk">'
        '<link rel="alternate" type="application/rss+xml" title="新闻订阅" href="/订阅.xml"></head></html>'
    )
    httpserver.expect_request("/cn/").respond_with_data(chinese.encode("gbk"), content_type="text/html")
    cdata = rss([item(1)]).replace(b"<channel>", b"<channel><description><![CDATA[<html>hi</html>]]></description>", 1)
    httpserver.expect_request("/cdata.xml").respond_with_data(cdata, content_type="text/xml")
    private = (
        '<html><head><link rel="alternate" type="application/rss+xml" href="http://127.0.0.1:9/f.xml"></head></html>'
    )
    httpserver.expect_request("/private/").respond_with_data(private, content_type="text/html")
    path = feeds_file(tmp_path)
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/wp/"), "--category", "tech")
    assert code == 0 and f"discovered {httpserver.url_for('/feed/')}" in err and "wp-json" not in err, err
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/cn/"), "--category", "tech")
    assert code == 0 and f"discovered {httpserver.url_for('/订阅.xml')}" in err, err
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/cdata.xml"), "--category", "tech")
    assert code == 0 and "discovered" not in err, err  # a feed, added as it is
    code, _out, err = run(path, "feeds", "add", httpserver.url_for("/private/"), "--category", "tech")
    assert code == 1 and "http://127.0.0.1:9/f.xml is on a private or local address" in err and "allow_hosts" in err
    assert [f.url for f in load_config(path).feeds][-3:] == [
        httpserver.url_for("/feed/"),
        httpserver.url_for("/订阅.xml"),
        httpserver.url_for("/cdata.xml"),
    ]


def test_a_crlf_file_keeps_its_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes(FEEDS_YAML.replace("\n", "\r\n").encode())
    assert run(path, "feeds", "disable", "https://a.example/feed.xml")[0] == 0
    assert run(path, "feeds", "add", "https://n.example/f", "--category", "tech", "--no-discover")[0] == 0
    data = path.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") and b"enabled: false" in data and b"n.example" in data


def test_inline_feeds_say_how_to_make_them_editable(tmp_path: Path) -> None:
    head = "settings:\n  publish: false\ncategories:\n  tech:\n    title: T\n"
    inline_list = feeds_file(tmp_path, head + 'feeds: [{url: "https://a.example/f", category: tech}]\n')
    for command in ("disable", "remove"):
        code, _out, err = run(inline_list, "feeds", command, "https://a.example/f")
        assert code == 2
        assert err == (
            f"error: {inline_list}:6: `feeds:` is written inline ([...]); write it as a block list "
            "(one `- url:` per feed) to edit it\n"
        )
    text = head + "feeds:\n  - {url: https://a.example/f, category: tech}\n"
    text += "  - url: https://b.example/f\n    category: tech\n"
    inline_item = feeds_file(tmp_path, text)
    code, _out, err = run(inline_item, "feeds", "disable", "https://a.example/f")
    assert code == 2 and "feeds.yaml:7: the feed 'https://a.example/f' is written inline ({...})" in err
    assert inline_item.read_text("utf-8") == text  # nothing written
    assert run(inline_item, "feeds", "remove", "https://a.example/f")[0] == 0  # a whole line goes: no problem
    assert [f.url for f in load_config(inline_item).feeds] == ["https://b.example/f"]


def test_an_edit_keeps_the_files_mode_and_symlink_and_never_shows_a_password(tmp_path: Path) -> None:
    real = tmp_path / "private" / "feeds.yaml"
    real.parent.mkdir()
    real.write_text(FEEDS_YAML, encoding="utf-8")
    real.chmod(0o600)  # it holds feed passwords
    link = tmp_path / "feeds.yaml"
    link.symlink_to(real)
    code, out, err = run(link, "feeds", "add", "https://reader:s3cret@127.0.0.1:9/feed.xml", "--category", "tech")
    assert code == 1 and "s3cret" not in err and err.startswith("error: https://***@127.0.0.1:9/feed.xml: connection")
    added = ("feeds", "add", "https://reader:s3cret@private.example/feed.xml", "--category", "tech", "--no-discover")
    code, out, err = run(link, *added)
    assert code == 0, err
    assert "s3cret" not in out + err and "added https://***@private.example/feed.xml to tech" in err
    assert link.is_symlink() and link.resolve() == real
    assert (real.stat().st_mode & 0o777) == 0o600
    assert "https://reader:s3cret@private.example/feed.xml" in real.read_text(encoding="utf-8")
    for command in ("disable", "enable", "remove"):
        code, out, err = run(link, "feeds", command, "https://reader:s3cret@private.example/feed.xml")
        assert code == 0 and "s3cret" not in out + err, err
    assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o600
    assert real.read_text(encoding="utf-8") == FEEDS_YAML
