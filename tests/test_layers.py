"""The architecture, checked: each third-party library lives in one module (or one layer's pair), and the
stages do not reach into each other (fetch knows no SQLite, parse no HTTP or SQLite, store no parser)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

# library -> the modules allowed to import it (and why more than one, where so)
OWNERS = {
    "feedparser": {"parse", "fastparse"},  # the fast path borrows feedparser's date reader to agree with it
    "httpx": {"fetch"},
    "httpcore": {"fetch", "netbackend"},  # httpx's transport layer: its pools, on our asyncio backend
    "apscheduler": {"daemon"},
    "feedgen": {"publish"},
    "sqlite_utils": {"store", "migrations"},  # the storage layer: schema and data
    "nh3": {"sanitize"},
    "ruamel": {"feedsfile"},
    "yaml": {"yamlread"},
    "click": {"cli", "cli_toolbox"},  # the command line, in two modules
    "starlette": {"server"},
    "uvicorn": {"server"},
    "jinja2": {"render"},
    "slugify": {"slugs"},
    "lxml": {"fastparse"},
    "defusedxml": {"opml_io"},
    "publicsuffixlist": {"domains"},
}
FORBIDDEN = {
    "fetch": {"sqlite3", "sqlite_utils", "feedparser", "aggregator.store", "aggregator.parse"},
    "parse": {"httpx", "sqlite3", "sqlite_utils", "aggregator.fetch", "aggregator.store"},
    "normalize": {"httpx", "sqlite3", "sqlite_utils", "feedparser", "aggregator.fetch", "aggregator.store"},
    "store": {"httpx", "feedparser", "aggregator.parse", "aggregator.fetch", "aggregator.normalize"},
    "models": {"httpx", "sqlite3", "sqlite_utils", "feedparser"},
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("aggregator." + (node.module or ""))
            elif node.module:
                names.add(node.module)
    return names


def test_each_library_is_imported_only_where_it_belongs() -> None:
    modules = {path.stem: imports(path) for path in PACKAGE.glob("*.py")}
    for library, owners in OWNERS.items():
        users = {
            name for name, found in modules.items() if any(i == library or i.startswith(library + ".") for i in found)
        }
        assert users <= owners, f"{library} imported by {sorted(users - owners)}"
        assert users, f"{library} is not used at all: drop it from OWNERS and pyproject.toml"


def test_stages_do_not_reach_into_each_other() -> None:
    for module, forbidden in FORBIDDEN.items():
        found = imports(PACKAGE / f"{module}.py")
        assert not {i for i in found if any(i == f or i.startswith(f + ".") for f in forbidden)}, module
