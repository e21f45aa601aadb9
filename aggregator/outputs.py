"""Everything derived from the archive after an update: republished feeds and the static site.

fetch-now, `aggregator publish` and the daemon all call `publish_outputs`, so the three agree on what
"publish" means. The database is the source of truth: both outputs can be rebuilt from it at any time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Config
from .publish import PublishReport, publish_feeds
from .site import SiteReport, write_site
from .store import Archive


@dataclass(frozen=True, slots=True)
class OutputsReport:
    feeds: PublishReport
    site: SiteReport

    def summary(self) -> str:
        return (
            f"{self.feeds.summary()} Site: {self.site.posts_written} posts and {self.site.pages_written} pages "
            f"written, {self.site.unchanged} unchanged."
        )


def publish_outputs(
    config: Config,
    archive: Archive,
    *,
    categories: set[str] | None = None,
    entry_ids: set[str] | None = None,
    rebuild: bool = False,
) -> OutputsReport:
    """Regenerate feeds and site. `None` means everything (only what changed is rewritten on disk); sets
    narrow the work to the categories and entries an update touched; `rebuild` re-renders every file."""
    if rebuild:
        categories = entry_ids = None
    site = write_site(config, archive, entry_ids=entry_ids, rebuild=rebuild)
    if site.removed_paths:
        # Posts moved (a feed changed category, an entry its date): the feeds of every category are
        # checked; those whose entries did not change are skipped by their fingerprints, cheaply.
        categories = None
    feeds = publish_feeds(config, archive, categories, force=rebuild)
    return OutputsReport(feeds=feeds, site=site)
