"""feeds.yaml validation: every problem is one line naming the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli.commands import main
from aggregator.configuration.load import load_config, parse_duration, parse_size
from aggregator.core.errors import ConfigError

GOOD = """\
settings:
  archive_dir: data/archive
  base_url: https://example.org/
  default_interval: 30m
  min_interval: 5m
  max_interval: 1d
  max_body_bytes: 5MB
categories:
  zhongguoshuiwubao:
    title: 中国税务报新闻
    tags: [中国税务报新闻]
  tech:
    title: Tech
    description: Engineering blogs
feeds:
  - url: https://example.org/feed.xml
    category: zhongguoshuiwubao
    interval: 15m
  - url: http://example.com/atom
    category: tech
    title: Example
    tags: [a, b]
    enabled: false
    headers: {Authorization: Bearer x}
    charset: gbk
    timezone: Asia/Shanghai
"""


def test_good_config_loads_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_config(path)
    assert config.settings.archive_dir == (tmp_path / "data" / "archive").resolve()
    assert config.settings.database_path.name == "aggregator.db"
    assert config.settings.max_body_bytes == 5 * 1024 * 1024
    assert config.settings.min_interval == 300 and config.settings.max_interval == 86400
    assert config.categories["zhongguoshuiwubao"].title == "中国税务报新闻"
    first, second = config.feeds
    assert first.interval == 900 and first.enabled and first.line == 16
    assert config.feed_tags(first) == ("中国税务报新闻",)
    assert second.tags == ("a", "b") and not second.enabled
    assert second.headers == (("Authorization", "Bearer x"),)
    assert second.charset == "gbk" and second.timezone == "Asia/Shanghai"
    assert "aggregator" in config.settings.user_agent and "http" in config.settings.user_agent


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("  - url: https://a.example/x\n    category: tech\n    colour: red\n", ":11: feeds[1].colour: unknown key"),
        ("  - category: tech\n", ":9: feeds[1].url: missing"),
        ("  - url: ftp://a.example/x\n    category: tech\n", ":9: feeds[1].url: unsupported URL scheme 'ftp'"),
        ("  - url: https://a.example/x\n    category: nope\n", ":10: feeds[1].category: unknown category 'nope'"),
        ("  - url: https://example.org/feed.xml\n    category: tech\n", ":9: feeds[1].url: duplicate feed"),
        ("  - url: HTTPS://Example.ORG:443/feed.xml\n    category: tech\n", ":9: feeds[1].url: duplicate feed"),
        (
            "  - url: https://a.example/x\n    category: tech\n    interval: soon\n",
            ":11: feeds[1].interval: not a duration",
        ),
        ("  - url: https://a.example/x\n    category: tech\n    charset: klingon\n", "unknown character encoding"),
        ("  - url: https://a.example/x\n    category: tech\n    timezone: Mars/Base\n", "unknown time zone"),
    ],
)
def test_each_problem_is_one_line_with_file_line_and_field(tmp_path: Path, snippet: str, expected: str) -> None:
    base = (
        "settings:\n  base_url: https://example.org/\ncategories:\n  tech: {title: Tech}\n"
        "feeds:\n  - url: https://example.org/feed.xml\n    category: tech\n\n"
    )
    path = tmp_path / "feeds.yaml"
    path.write_text(base + snippet, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(str(path))
    assert expected in message


def test_unknown_setting_and_bad_interval_bounds(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  min_interval: 2d\n  max_interval: 1d\n  colour: red\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    assert any(":4: settings.colour: unknown setting" in line for line in lines)
    assert any("settings.min_interval: must not exceed max_interval" in line for line in lines)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - url: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feeds.yaml:\d+: YAML syntax error"):
        load_config(path)


def test_a_key_given_twice_is_an_error_not_a_silent_last_wins(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  archive_dir: archive\n  archive_dir: other\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}:3: YAML syntax error: duplicate key 'archive_dir' (first on line 2)"


def test_reserved_and_invalid_category_slugs(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("categories:\n  all: {}\n  Bad Slug: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "categories.all: 'all' is reserved" in text
    assert "categories.Bad Slug: slug must be" in text
    # A feed in a refused category is not reported a second time as in an unknown one.
    path.write_text(
        "categories:\n  Bad Slug: {}\nfeeds:\n  - {url: 'https://a.example/', category: Bad Slug}\n", "utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).count("\n") == 0 and "slug must be" in str(raised.value)


def test_a_file_in_another_encoding_names_its_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes("# 订阅\ncategories:\n  news: {title: 新闻}\n".encode("gb18030"))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == (
        f"{path}:1: not UTF-8 (byte 0xb6); save the file as UTF-8, e.g. iconv -f GBK -t UTF-8 feeds.yaml"
        " > feeds.utf8.yaml"
    )


def test_cli_exits_2_without_traceback_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - url: gopher://x\n    category: none\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "feeds[0].url: unsupported URL scheme 'gopher'" in result.output


def test_a_password_with_a_raw_slash_is_named_as_the_problem_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    for password in ("s3cr/et?x", "s3cr?et", "s3cr#et"):
        url = f"https://user:{password}@127.0.0.1:9/feed"
        path.write_text(f"categories: {{news: {{}}}}\nfeeds:\n  - url: '{url}'\n    category: news\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.count("\n") == 1, result.output
        assert "s3cr" not in result.output  # urlsplit's own message names what it took for a port
        assert "feeds[0].url: the password holds a raw" in result.output, result.output
        assert "https://***@127.0.0.1:9/feed" in result.output


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "fetch-now"])
    assert result.exit_code == 2
    assert "config file not found" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (45, 45), ("1h30m", 5400)]
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5m", "soon", "", True, None, "5x"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_sizes() -> None:
    assert parse_size("20MB") == 20 * 1024 * 1024
    assert parse_size(1000) == 1000
    with pytest.raises(ValueError):
        parse_size("lots")


def test_scalars_follow_yaml_core_schema(tmp_path: Path) -> None:
    """Only true/false are booleans: a title "No" or "on" stays text, as a round-trip editor reads it."""
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "categories:\n  news: {title: No}\n  tech: {title: on}\n"
        "feeds:\n  - {url: 'https://a.example/', category: news, enabled: false}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.categories["news"].title == "No" and config.categories["tech"].title == "on"
    assert config.feeds[0].enabled is False
    path.write_text("feeds:\n  - {url: 'https://a.example/', category: news, enabled: yes}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.enabled: must be true or false, got 'yes'"):
        load_config(path)


def test_global_options_work_after_the_command_name(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("feeds:\n  - url: gopher://x\n    category: none\n", encoding="utf-8")
    for args in (["fetch-now", "--config", str(path)], ["fetch-now", f"--config={path}", "--log-level", "debug"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"{path}:2: feeds[0].url: unsupported URL scheme 'gopher'" in result.output
    for option in ("--config", "--log-level"):
        result = CliRunner().invoke(main, ["fetch-now", option])
        assert result.exit_code == 2 and f"Option '{option}' requires an argument" in result.output, result.output


def test_archive_dir_may_start_at_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "feeds.yaml"
    path.write_text("settings:\n  archive_dir: ~/news-archive\n", encoding="utf-8")
    assert load_config(path).settings.archive_dir == tmp_path / "home" / "news-archive"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("templates_dir: nodir", ":2: settings.templates_dir: 'nodir' is not a folder"),
        ("allow_hosts: [intranet]", ":2: settings.allow_hosts: entries must be host:port"),
        ("allow_hosts: ['intranet:99999']", ":2: settings.allow_hosts: entries must be host:port"),
        ("allow_hosts: ['user@intranet:80']", ":2: settings.allow_hosts: entries must be host:port"),
        ("archive_dir: feeds.yaml", "feeds.yaml:2: settings.archive_dir: "),
        ("archive_dir: ~no-such-user-here/archive", ":2: settings.archive_dir: Could not determine home directory"),
    ],
)
def test_settings_that_could_never_work_are_refused_when_loading(tmp_path: Path, setting: str, expected: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(f"settings:\n  {setting}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)
    (tmp_path / "nodir").mkdir()
    path.write_text("settings:\n  templates_dir: nodir\n  allow_hosts: ['Intranet.:08080', '[::1]:80']\n", "utf-8")
    assert load_config(path).settings.allow_hosts == ("intranet:8080", "[::1]:80")
