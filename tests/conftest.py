"""Shared fixtures: a real HTTP server on 127.0.0.1 (pytest-httpserver), config files, a real archive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from aggregator.configuration.load import load_config
from aggregator.core.models import Config
from aggregator.pipeline import RunSummary, update_feeds
from aggregator.store.archive import Archive

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "feedparser-tests"
DATA = Path(__file__).parent / "data"
# The sample post the Jekyll site must reproduce byte for byte (a copy of shared/seed/000_de254b8916e3a40b.txt,
# carried here so that the test runs in any clone).
SEED = DATA / "sample_post_000_de254b8916e3a40b.txt"


def write_config(
    directory: Path,
    feeds: Iterable[dict[str, Any]],
    categories: dict[str, Any] | None = None,
    **settings: Any,
) -> Path:
    """Write a feeds.yaml with the given feeds; categories default to the ones the feeds name."""
    feeds = list(feeds)
    if categories is None:
        categories = {f["category"]: {"title": f["category"].title()} for f in feeds}
    document = {
        "settings": {"archive_dir": "archive", "base_url": "https://archive.example.org/", **settings},
        "categories": categories,
        "feeds": feeds,
    }
    path = directory / "feeds.yaml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(document, handle)
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(feeds: Iterable[dict[str, Any]], categories: dict[str, Any] | None = None, **settings: Any) -> Config:
        settings.setdefault("publish", False)
        # Every test feed lives on one local server: politeness spacing would only slow the suite down.
        settings.setdefault("per_host_delay", 0)
        return load_config(write_config(tmp_path, feeds, categories, **settings))

    return make


def run_update(config: Config, feeds: list[Any] | None = None) -> RunSummary:
    """One real fetch-now pass over `feeds` (default: every enabled feed) into the config's archive."""
    with Archive.open(config.settings.database_path) as archive:
        return asyncio.run(update_feeds(config, feeds if feeds is not None else list(config.feeds), archive))


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".json", ".rdf", ".atom"))
