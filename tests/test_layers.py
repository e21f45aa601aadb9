"""The architecture, checked from the imports: each subpackage imports only the stages its docstring allows,
the pure core imports no I/O library, and each third-party library has one owner (a module, or a stage)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"
DATA_FOLDERS = {"samples", "templates"}  # package data, not code

# The stages a part may import, besides itself. The data flows feeds.yaml -> configuration -> fetching ->
# parsing -> store -> publishing / serving; pipeline and parse_workers orchestrate one poll, daemon and cli
# put runs together. Everything may import core; nothing but cli (and __main__) imports cli.
MAY_IMPORT = {
    "core": set(),
    "configuration": {"core"},
    "fetching": {"core"},
    "parsing": {"core"},
    "store": {"core"},
    "publishing": {"core", "store"},
    "serving": {"core"},
    "parse_workers": {"core", "parsing", "store"},
    "pipeline": {"core", "fetching", "parse_workers", "store"},
    "daemon": {"core", "configuration", "fetching", "parse_workers", "pipeline", "publishing", "serving", "store"},
    "cli": {
        "core",
        "configuration",
        "daemon",
        "fetching",
        "parse_workers",
        "pipeline",
        "publishing",
        "serving",
        "store",
    },
    "__main__": {"cli"},
}

# Libraries that do I/O (network, database, servers, processes): never in the pure core.
IO_LIBRARIES = {
    "httpx",
    "httpcore",
    "socket",
    "ssl",
    "sqlite3",
    "sqlite_utils",
    "starlette",
    "uvicorn",
    "apscheduler",
    "multiprocessing",
    "asyncio",
    "click",
    "urllib.request",
}

# library -> the modules (or whole stages, as "stage/") allowed to import it
OWNERS = {
    "feedparser": {"parsing/document", "parsing/fastpath"},  # the fast path borrows feedparser's date reader
    "lxml": {"parsing/fastpath", "parsing/article_page", "parsing/article"},
    "trafilatura": {"parsing/article"},
    "readability": {"parsing/article"},  # readability-lxml
    "cssselect": {"parsing/article_page"},  # its SelectorError: feeds' selectors are CSS
    "httpx": {"fetching/client"},
    "httpcore": {"fetching/client", "fetching/backend"},  # httpx's transport: its pools, on our asyncio backend
    "apscheduler": {"daemon/runner"},
    "feedgen": {"publishing/feed_documents"},
    "sqlite_utils": {"store/"},
    "sqlite3": {"store/"},
    "nh3": {"core/sanitize"},
    "ruamel": {"configuration/feeds_file"},
    "yaml": {"configuration/yamlread"},
    "click": {"cli/"},
    "starlette": {"serving/app"},
    "uvicorn": {"serving/app"},
    "prometheus_client": {"serving/metrics"},
    "jinja2": {"publishing/render"},
    "slugify": {"core/slugs"},
    "defusedxml": {"configuration/opml"},
    "publicsuffixlist": {"fetching/domains"},
}


def _name(path: Path) -> str:
    """`aggregator/store/archive.py` -> `store/archive`; `aggregator/pipeline.py` -> `pipeline`."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    return str(relative.parent if relative.name == "__init__" else relative)


@cache
def modules() -> dict[str, set[str]]:
    """Every module of the package with the absolute names it imports (relative imports resolved)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        package = ["aggregator", *path.relative_to(PACKAGE).parent.parts]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    names.add(".".join([*base, node.module] if node.module else base))
                elif node.module:
                    names.add(node.module)
        found[_name(path)] = names
    return found


def _stage(module: str) -> str:
    return module.split("/")[0]


def _imports_of(library: str, names: set[str]) -> bool:
    return any(name == library or name.startswith(library + ".") for name in names)


def test_every_part_of_the_package_has_a_rule() -> None:
    stages = {_stage(module) for module in modules()} - DATA_FOLDERS
    assert stages <= set(MAY_IMPORT) | {"."}, sorted(stages - set(MAY_IMPORT))


@pytest.mark.parametrize("stage", sorted(MAY_IMPORT))
def test_a_stage_imports_only_the_stages_it_may(stage: str) -> None:
    allowed = MAY_IMPORT[stage] | {stage}
    for module, names in modules().items():
        if _stage(module) != stage:
            continue
        reached = {name.split(".")[1] for name in names if name.startswith("aggregator.")}
        assert reached <= allowed, f"aggregator/{module}.py imports {sorted(reached - allowed)}"


def test_the_core_is_pure() -> None:
    for module, names in modules().items():
        if _stage(module) == "core":
            used = {library for library in IO_LIBRARIES if _imports_of(library, names)}
            assert not used, f"aggregator/{module}.py imports {sorted(used)}"


def test_each_library_is_imported_only_by_its_owner() -> None:
    for library, owners in OWNERS.items():
        users = {module for module, names in modules().items() if _imports_of(library, names)}
        strays = {m for m in users if m not in owners and not any(o.endswith("/") and m.startswith(o) for o in owners)}
        assert not strays, f"{library} imported by {sorted(strays)}"
        assert users, f"{library} is not used at all: drop it from OWNERS and pyproject.toml"


def test_every_subpackage_says_what_it_owns_and_what_it_must_not_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        if init.parent.name in DATA_FOLDERS:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "Owns:" in doc and "Never imports" in doc, f"{init.relative_to(PACKAGE.parent)}: docstring"


def test_no_module_grows_past_its_seam() -> None:
    lengths = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert not {path: n for path, n in lengths.items() if n > 560}, "split along a real seam"
