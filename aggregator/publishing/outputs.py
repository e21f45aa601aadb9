"""Everything derived from the archive after an update: republished feeds and the static site.

fetch-now, `aggregator publish` and the daemon all call `publish_outputs`, so the three agree on what
"publish" means. The database is the source of truth: both outputs can be rebuilt from it at any time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from aggregator.core.atomic import write_atomic
from aggregator.core.errors import PublishError, StorageError
from aggregator.core.models import Config
from aggregator.publishing.feeds import PublishReport, publish_feeds
from aggregator.publishing.site import SiteReport, write_site
from aggregator.store.archive import Archive

log = logging.getLogger("aggregator.outputs")


@dataclass(frozen=True, slots=True)
class OutputsReport:
    feeds: PublishReport
    site: SiteReport

    def summary(self) -> str:
        return (
            f"{self.feeds.summary()} Site: {self.site.posts_written} post files and {self.site.pages_written} "
            f"pages written (Jekyll and plain HTML together), {self.site.unchanged} unchanged."
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
    narrow the work to the categories and entries an update touched; `rebuild` re-renders every file.
    A file that cannot be written (a full disk, permissions) is a `PublishError`: one line, and the next
    publish completes what this one could not (the published mark is saved only after a full success)."""
    try:
        return _publish_outputs(config, archive, categories, entry_ids, rebuild)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        raise PublishError(f"cannot write{where}: {error.strerror or error}") from None


def _publish_outputs(
    config: Config,
    archive: Archive,
    categories: set[str] | None,
    entry_ids: set[str] | None,
    rebuild: bool,
) -> OutputsReport:
    if rebuild:
        categories = entry_ids = None
    try:
        # A feed moved in feeds.yaml since its last poll: its posts and feed items move now, not at that poll.
        archive.apply_categories({feed.url: feed.category for feed in config.feeds})
    except StorageError as error:  # a read-only archive still publishes, as it stands
        log.warning("%s", error)
    mark = archive.publish_mark()
    if entry_ids is not None:
        behind = _unpublished(config, archive)
        if behind is None:
            # No publish has completed here (a first one was cut short, or an older version published):
            # whoever publishes next, fetch-now or the daemon, publishes everything.
            categories = entry_ids = None
        else:
            # What a run stored but never published (it was killed after its commit, before or while
            # publishing) goes out with the next publish, whichever process makes it.
            entry_ids = entry_ids | behind.keys()
            if categories is not None:
                categories = categories | set(behind.values())
    site = write_site(config, archive, entry_ids=entry_ids, rebuild=rebuild)
    if site.removed_paths:
        # Posts moved (a feed changed category, an entry its date): the feeds of every category are
        # checked; those whose entries did not change are skipped by their fingerprints, cheaply.
        categories = None
    feeds = publish_feeds(config, archive, categories, force=rebuild)
    _save_mark(config, mark)
    return OutputsReport(feeds=feeds, site=site)


# How far the last complete publish saw the archive (Archive.publish_mark), beside the outputs it made.
MARK_FILE = ".published-mark.json"


def _unpublished(config: Config, archive: Archive) -> dict[str, str] | None:
    """id -> category of what was stored after the last complete publish; None when none has completed."""
    try:
        entries, revisions = json.loads((config.settings.archive_dir / MARK_FILE).read_text(encoding="utf-8"))
        mark = (int(entries), int(revisions))
    except (OSError, ValueError, TypeError):
        return None
    return archive.changed_since(mark)


def _save_mark(config: Config, mark: tuple[int, int]) -> None:
    write_atomic(config.settings.archive_dir / MARK_FILE, json.dumps(list(mark)).encode())
