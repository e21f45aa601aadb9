"""Pure rendering: the sample post byte for byte, YAML quoting that round-trips anything, safe slugs."""

from __future__ import annotations

import random
import unicodedata

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from aggregator.core.slugs import MAX_SLUG_BYTES, RESERVED_NAMES, SlugRequest, assign_slugs, base_slug
from aggregator.publishing.render import (
    PostView,
    Renderer,
    SiteInfo,
    render_jekyll_post,
    yaml_quote,
    yaml_scalar,
    yaml_tags,
)
from tests.conftest import SEED
from tests.sitehelpers import cst

SAMPLE_TITLE = "“四维”发力 确保征管改革见成效"
SAMPLE_LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202203162311033675"
SITE = SiteInfo(
    title="Archive", language="zh", base_url="https://finews.withounder.com/", home_url="//finews.withounder.com/"
)


def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def seed_body(seed: str) -> str:
    return seed[seed.index("---\n", 4) + 4 : seed.index("\n\n<http")]


def sample_post(**changes: object) -> PostView:
    fields: dict[str, object] = {
        "entry_id": "de254b8916e3a40b",
        "title": SAMPLE_TITLE,
        "published": cst(2022, 3, 16, 8, 54, 16),
        "category": "zhongguoshuiwubao",
        "category_title": "中国税务报新闻",
        "tags": ("中国税务报新闻",),
        "body": "<p>x</p>",
        "link": SAMPLE_LINK,
        "slug": "四维-发力-确保征管改革见成效",
        "site_time": cst(2022, 3, 16, 8, 54, 16),
    }
    fields.update(changes)
    return PostView(**fields)  # type: ignore[arg-type]


def front_matter(text: str) -> dict[str, object]:
    assert text.startswith("---\n")
    head = text[4 : text.index("\n---\n", 4)]
    loaded = yaml.safe_load(head)
    assert YAML(typ="safe", pure=True).load(head) == loaded
    return loaded  # type: ignore[no-any-return]


def test_sample_post_is_reproduced_byte_for_byte() -> None:
    seed = seed_text()
    post = sample_post(body=seed_body(seed))
    assert render_jekyll_post(Renderer(), post, SITE).encode("utf-8") == seed.encode("utf-8")


def test_post_front_matter_parses_to_the_entry() -> None:
    text = render_jekyll_post(Renderer(), sample_post(title='a: "b" --- \\ \n# c', tags=("x y", "yes")), SITE)
    matter = front_matter(text)
    assert matter["title"] == 'a: "b" --- \\ \n# c'
    assert matter["tags"] == ["x y", "yes"]
    assert matter["categories"] == "zhongguoshuiwubao"
    assert text.count("\n---\n") == 1  # the title's `---` cannot end the front matter early


def test_post_without_link_still_has_back_links() -> None:
    text = render_jekyll_post(Renderer(), sample_post(link=""), SITE)
    assert text.endswith(
        "<p>x</p>\n\n[返回中国税务报新闻](//finews.withounder.com/category/zhongguoshuiwubao.html)｜[返回首页](//finews.withounder.com/)"
    )


@settings(max_examples=500)
@given(st.text())
def test_yaml_quote_round_trips_any_text(text: str) -> None:
    document = f"title: {yaml_quote(text)}\n"
    assert yaml.safe_load(document) == {"title": text}
    assert YAML(typ="safe", pure=True).load(document) == {"title": text}


@given(st.lists(st.text(min_size=1), min_size=0, max_size=4))
def test_yaml_tags_round_trip(tags: list[str]) -> None:
    loaded = yaml.safe_load(f"tags: {yaml_tags(tags)}\n")["tags"]
    assert (loaded if isinstance(loaded, list) else [loaded]) == tags
    if isinstance(loaded, str):
        assert len(loaded.split()) == 1  # Jekyll splits a string of tags on spaces


@pytest.mark.parametrize(
    "value", ["yes", "No", "null", "~", "1.5", "-3", "2022-03-16", "a: b", "[x]", "*x", "&a", "!t"]
)
def test_yaml_scalar_quotes_what_a_parser_would_change(value: str) -> None:
    assert yaml.safe_load(f"v: {yaml_scalar(value)}") == {"v": value}


def test_sample_tags_and_category_stay_bare() -> None:
    assert yaml_tags(["中国税务报新闻"]) == "中国税务报新闻"
    assert yaml_scalar("zhongguoshuiwubao") == "zhongguoshuiwubao"


HOSTILE = ["../../etc/passwd", "x" * 2000, "中" * 2000, "!!!...???", "---", "", "CON", "nul", "a/b\\c", "\x00\x1f\x7f"]


@pytest.mark.parametrize("title", HOSTILE)
def test_base_slug_is_a_safe_file_name(title: str) -> None:
    slug = base_slug(title, "de254b8916e3a40b")
    assert_safe_slug(slug)


@given(st.text(), st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))
def test_any_title_gives_a_safe_slug(title: str, entry_id: str) -> None:
    assert_safe_slug(base_slug(title, entry_id))


def assert_safe_slug(slug: str) -> None:
    assert slug
    assert len(slug.encode("utf-8")) <= MAX_SLUG_BYTES + 9
    assert "/" not in slug and "\\" not in slug and "." not in slug
    assert not any(unicodedata.category(ch).startswith("C") or ch.isspace() for ch in slug)
    assert slug.lower() not in RESERVED_NAMES
    assert not slug.startswith("-") and not slug.endswith("-")


def test_cjk_stays_readable() -> None:
    assert base_slug(SAMPLE_TITLE, "x") == "四维-发力-确保征管改革见成效"


def test_collisions_get_id_suffixes_whatever_the_order() -> None:
    requests = [
        SlugRequest(entry_id=f"{n:016x}", title="Same title", first_seen=f"2024-01-0{n}", scopes=("day",))
        for n in range(1, 6)
    ]
    expected = assign_slugs(requests)
    for _ in range(5):
        random.shuffle(requests)
        assert assign_slugs(requests) == expected
    assert expected["0000000000000001"] == "same-title"  # the first seen keeps the plain slug
    assert len(set(expected.values())) == 5
    assert expected["0000000000000002"] == "same-title-00000000"
    assert expected["0000000000000003"] == "same-title-0000000000000003"  # longer suffix when 8 chars collide


def test_an_entry_seen_later_never_takes_a_slug() -> None:
    first = SlugRequest(entry_id="b" * 16, title="News", first_seen="2024-01-01", scopes=("day",))
    later = SlugRequest(entry_id="a" * 16, title="News", first_seen="2024-01-02", scopes=("day",))
    assert assign_slugs([first])["b" * 16] == assign_slugs([first, later])["b" * 16] == "news"


def test_slugs_in_different_scopes_may_repeat() -> None:
    one = SlugRequest(entry_id="a" * 16, title="News", first_seen="1", scopes=("2024-01-01",))
    two = SlugRequest(entry_id="b" * 16, title="News", first_seen="2", scopes=("2024-01-02",))
    assert set(assign_slugs([one, two]).values()) == {"news"}
