"""The product's layers, read from its imports (every import statement, at module level or in a function): the
job's stages never import one another, shared code imports no stage, the controller never imports the job, the
API types import neither, and no module of the product imports itself round a circle.

The stages are the packages under job/ named in STAGES; they meet only in job/model.py's types and job/pipeline.py,
and share what they must through job/shared/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("anchor", "api", "controller", "job", "voicevox_standin")
STAGES = ("job.news", "job.script", "job.voice", "job.video", "job.publish", "job.memory")
FOR_EVERY_STAGE = ("job.model", "job.shared")
"""What any stage, and job/shared/ itself, may import from the job."""
NEVER = {"controller": ("job",), "api": ("job", "controller")}
"""Packages that must not import these at all: the controller image carries no job, the API types stand alone."""


def modules(root: Path) -> dict[str, Path]:
    """Every module of the product under `root` by its dotted name (a package by its __init__)."""
    found = {}
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The product modules that module `name` imports, resolved as Python would (`from a import b` names the
    module a.b when there is one, else a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import job.news.reader as x` names a module; keep the deepest
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _stage(name: str) -> str | None:
    return next((stage for stage in STAGES if _within(name, stage)), None)


def forbidden(edges: dict[str, set[str]]) -> list[str]:
    """Each import that crosses a line it must not, as 'importer -> imported (why)'."""
    found = []
    for importer, targets in sorted(edges.items()):
        own = _stage(importer)
        for target in sorted(targets):
            for package, banned in NEVER.items():
                if _within(importer, package) and any(_within(target, b) for b in banned):
                    found.append(f"{importer} -> {target} ({package} never imports {', '.join(banned)})")
            if not _within(target, "job") or any(_within(target, p) for p in FOR_EVERY_STAGE):
                continue
            if own and not _within(target, own):
                found.append(f"{importer} -> {target} (the stage {own} imports beyond itself, model and shared)")
            if _within(importer, "job.shared"):
                found.append(f"{importer} -> {target} (job.shared imports no stage)")
    return found


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_stage_imports_another_and_no_layer_reaches_where_it_must_not() -> None:
    edges = graph(ROOT)
    assert {stage for stage in STAGES if stage in edges} == set(STAGES), "every stage is a package under job/"
    assert forbidden(edges) == []


def test_no_import_circle_anywhere_in_the_product() -> None:
    assert circles(graph(ROOT)) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PRODUCT:
        (root / package).mkdir(exist_ok=True)
    return root


def test_the_rules_catch_a_planted_cross_stage_import_a_shared_one_and_a_circle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "job/__init__.py": "",
            "job/model.py": "",
            "job/pipeline.py": "from job.news import reader\nfrom job.video import slides\n",
            "job/news/__init__.py": "",
            "job/news/reader.py": "from job.model import Story\nfrom . import fetch\n",
            "job/news/fetch.py": "def f():\n    from job.video.slides import Layout\n",
            "job/video/__init__.py": "",
            "job/video/slides.py": "import job.video.layout\n",
            "job/video/layout.py": "from .slides import Studio\n",
            "job/shared/__init__.py": "",
            "job/shared/storage.py": "from job.publish import store\n",
            "job/publish/__init__.py": "",
            "job/publish/store.py": "from job.shared import storage\n",
            "controller/__init__.py": "",
            "controller/main.py": "from job.model import Story\n",
            "api/__init__.py": "",
        },
    )
    edges = graph(root)
    assert edges["job.news.reader"] == {"job.model", "job.news.fetch"}, "relative and absolute imports resolve"
    assert forbidden(edges) == [
        "controller.main -> job.model (controller never imports job)",
        "job.news.fetch -> job.video.slides (the stage job.news imports beyond itself, model and shared)",
        "job.shared.storage -> job.publish.store (job.shared imports no stage)",
    ]
    assert sorted(circles(edges)) == [
        ["job.publish.store", "job.shared.storage"],
        ["job.video.layout", "job.video.slides"],
    ]
