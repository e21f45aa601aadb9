"""`aggregator demo`: the whole main job offline, on bundled sample feeds served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from aggregator.cli.fetch_run import run_fetch
from aggregator.configuration.load import load_config
from aggregator.core.errors import AggregatorError
from aggregator.store.archive import Archive

SAMPLES = {
    "/tech/rss2.xml": ("rss2.xml", "application/rss+xml; charset=utf-8"),
    "/news/atom.xml": ("atom.xml", "application/atom+xml; charset=utf-8"),
    # Served as GBK-encoded bytes with a GBK XML declaration, as Chinese news sites do.
    "/finews/zhongguoshuiwubao.xml": ("zhongguoshuiwubao-gbk.xml", "application/xml"),
}

DEMO_CONFIG = """\
# Written by `aggregator demo`: three sample feeds served from this machine.
settings:
  archive_dir: archive
  base_url: https://archive.example.org/
categories:
  tech:
    title: Engineering
  news:
    title: Nachrichten
  zhongguoshuiwubao:
    title: 中国税务报新闻
    tags: [中国税务报新闻]
feeds:
  - url: {base}/tech/rss2.xml
    category: tech
  - url: {base}/news/atom.xml
    category: news
  - url: {base}/finews/zhongguoshuiwubao.xml
    category: zhongguoshuiwubao
"""


def sample_bytes(name: str) -> bytes:
    return resources.files("aggregator.samples").joinpath(name).read_bytes()


class _SampleHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        sample = SAMPLES.get(self.path)
        if sample is None:
            self.send_error(404)
            return
        body = sample_bytes(sample[0])
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", sample[1])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_samples() -> Iterator[str]:
    """Serve the bundled samples on 127.0.0.1 (a free port); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SampleHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _refuse_a_real_archive(root: Path) -> None:
    """The demo writes its own feeds.yaml and sample entries: never over an operator's own, though a
    folder an earlier demo made may be reused."""
    if root.exists() and not root.is_dir():
        raise AggregatorError(f"{root} is a file, not a folder: give --dir a new or empty folder")
    config_path = root / "feeds.yaml"
    try:
        ours = config_path.read_text(encoding="utf-8").startswith(DEMO_CONFIG.partition("\n")[0])
    except FileNotFoundError:
        ours = not (root / "archive").exists()
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise AggregatorError(
            f"{root} already holds a feeds.yaml or an archive/ the demo did not write; the demo would replace"
            " the one and add its sample entries to the other: give --dir an empty or new folder"
        )


def run_demo(directory: Path | None) -> None:
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="aggregator-demo-"))
    _refuse_a_real_archive(root)
    root.mkdir(parents=True, exist_ok=True)
    with serve_samples() as base:
        config_path = root / "feeds.yaml"
        config_path.write_text(DEMO_CONFIG.format(base=base), encoding="utf-8")
        config = load_config(config_path)
        print(f"Serving {len(SAMPLES)} sample feeds at {base}; config written to {config_path}")
        summary, _seconds = run_fetch(config, (), None, progress=False)
    print("")
    print("Stored entries (newest first, dates in each source's own offset):")
    with Archive.open(config.settings.database_path) as archive:
        for entry in archive.entries():
            print(f"  [{entry.category}] {entry.published:%Y-%m-%d %H:%M:%S %z}  {entry.title}")
    print("")
    print(f"Database: {config.settings.database_path}")
    print(f"Try:      sqlite-utils tables {config.settings.database_path} --counts")
    print(f"Re-run:   aggregator --config {config_path} fetch-now   (while no server runs, feeds fail cleanly)")
    if summary.failed:
        raise SystemExit(1)
