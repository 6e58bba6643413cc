"""The package's layout rules, checked on its source with ``ast`` (nothing is imported):

- few modules at the top of ``internet/`` (the rest live in folders by role);
- no file over 500 lines and no function over 80 outside ``internet/synth/`` (the reference loop
  ``evaluate_interhand_loop`` follows the official code line by line and may be longer);
- the role folders import each other in one direction only (docs/design.md, the import layers);
- no private name imported across modules, no private torch API, no ``batch_slots``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "internet"

LAYERS = ["utils", "geometry", "data", "model", "mano", "infer", "evaluation", "engine", "vis", "app"]
"""The role folders from the bottom up: a folder imports only folders before it (and config, skeleton)."""
BASE = {"config", "skeleton"}
"""Top-level modules every folder may import; they import nothing of the package."""
SYNTH_MAY_IMPORT = {"utils", "geometry", "config", "skeleton", "synth"}
MAX_TOP_LEVEL = 4
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS_ALLOWED = {"internet/evaluation/protocol.py:evaluate_interhand_loop"}


FOLDERS = [p.name for p in sorted(PACKAGE.iterdir()) if p.is_dir() and p.name != "__pycache__"]


def python_files(root: Path = PACKAGE) -> List[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def role(module: str) -> str:
    """The folder (or top-level module) of ``internet.x.y``: ``x``; the package itself: ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path, root: Path = PACKAGE) -> Iterator[Tuple[str, List[str], int]]:
    """(imported module, names imported from it, line) for every import of the file, module-level and inside
    functions; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [a.name for a in node.names], node.lineno


def functions(tree: ast.AST) -> Iterator[Tuple[str, int]]:
    """(qualified name, lines from ``def`` to its last line) of every function and method."""

    def visit(node: ast.AST, prefix: str) -> Iterator[Tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                yield name, child.end_lineno - child.lineno + 1
                yield from visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


# ------------------------------------------------------------------------------------------------ (a) top level
def test_few_modules_at_the_top_of_the_package():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at the top of internet/ (at most {MAX_TOP_LEVEL}): {top}"


# ------------------------------------------------------------------------------------------------ (b) sizes
def size_violations(folder: str, root: Path = PACKAGE) -> List[str]:
    """Files over MAX_FILE_LINES and functions over MAX_FUNCTION_LINES in ``folder`` ('' for the top level)."""
    out = []
    files = python_files(root / folder) if folder else sorted(root.glob("*.py"))
    for path in files:
        rel = path.relative_to(root.parent).as_posix()
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_FILE_LINES:
            out.append(f"{rel}: {lines} lines (at most {MAX_FILE_LINES})")
        for name, length in functions(ast.parse(text, rel)):
            if length > MAX_FUNCTION_LINES and f"{rel}:{name}" not in LONG_FUNCTIONS_ALLOWED:
                out.append(f"{rel}:{name}: {length} lines (at most {MAX_FUNCTION_LINES})")
    return out


SIZE_FOLDERS = [""] + [
    p.name for p in sorted(PACKAGE.iterdir()) if p.is_dir() and p.name not in ("synth", "__pycache__")
]


@pytest.mark.parametrize("folder", SIZE_FOLDERS)
def test_no_long_file_or_function(folder):
    violations = size_violations(folder)
    assert not violations, "\n".join(violations)


# ------------------------------------------------------------------------------------------------ (c) layers
def import_graph(root: Path = PACKAGE) -> Dict[str, Set[Tuple[str, str]]]:
    """role -> {(imported role, 'file:line')} over every import of the package by the package."""
    graph: Dict[str, Set[Tuple[str, str]]] = {}
    for path in python_files(root):
        src = module_name(path, root)
        for target, _, line in imports(path, root):
            if target == "internet" or target.startswith("internet."):
                dst = role(target)
                if dst and dst != role(src):
                    graph.setdefault(role(src), set()).add((dst, f"{path.relative_to(root.parent)}:{line}"))
    return graph


def layer_violations(graph: Dict[str, Set[Tuple[str, str]]]) -> List[str]:
    out = []
    rank = {name: i for i, name in enumerate(LAYERS)}
    rank["synth"] = rank["geometry"] + 0.5  # it builds on geometry only; the layers above may use it (the demo)
    for src, edges in sorted(graph.items()):
        for dst, where in sorted(edges):
            if src in BASE:
                out.append(f"{where}: {src} imports internet.{dst} ({src} imports nothing of the package)")
            elif src == "synth":  # before the rank test: synth has its own, narrower list
                if dst not in SYNTH_MAY_IMPORT:
                    out.append(f"{where}: synth imports internet.{dst} (only {sorted(SYNTH_MAY_IMPORT)})")
            elif src in rank and dst in rank and rank[dst] > rank[src]:
                out.append(f"{where}: {src} imports internet.{dst}, a layer above it ({' < '.join(LAYERS)})")
            elif src in rank and dst not in rank and dst not in BASE:
                out.append(f"{where}: {src} imports internet.{dst}, which is not in a layer")
    return out


def cycles(graph: Dict[str, Set[Tuple[str, str]]]) -> List[List[str]]:
    """Every cycle found by a depth-first search of the role graph."""
    succ = {src: {dst for dst, _ in edges} for src, edges in graph.items()}
    found, state = [], {}

    def visit(node: str, stack: List[str]) -> None:
        state[node] = "open"
        for nxt in sorted(succ.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(succ):
        if node not in state:
            visit(node, [node])
    return found


def test_role_folders_import_downwards_only():
    graph = import_graph()
    assert not cycles(graph), f"import cycles between role folders: {cycles(graph)}"
    violations = layer_violations(graph)
    assert not violations, "\n".join(violations)


# ------------------------------------------------------------------------------------------------ (d) private names
def private_imports(root: Path = PACKAGE, folder: str = "") -> List[str]:
    """``from X import _name`` (or from a private module) of the package's modules in ``folder`` ('' for all)."""
    out = []
    for path in python_files(root / folder if folder else root):
        for target, names, line in imports(path, root):
            if not (target == "internet" or target.startswith("internet.")):
                continue
            where = f"{path.relative_to(root.parent)}:{line}"
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private_module = [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private or private_module:
                out.append(f"{where}: from {target} import {', '.join(names)}")
    return out


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_private_name_is_imported_across_modules(folder):
    found = private_imports(folder=folder)
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------------------------ (e) banned
BANNED = {
    "batch_slots": re.compile(r"batch_slots"),
    "a private torch API": re.compile(r"torch(\.\w+)*\._[a-z]\w*"),
}


def banned_uses(root: Path = PACKAGE) -> List[str]:
    out = []
    for path in python_files(root):
        for number, text in enumerate(path.read_text().splitlines(), 1):
            for what, pattern in BANNED.items():
                m = pattern.search(text)
                if m:
                    out.append(f"{path.relative_to(root.parent)}:{number}: {what} ({m.group(0)})")
    return out


def test_no_batch_slots_and_no_private_torch_api():
    found = banned_uses()
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------------------------ the checks check
def _write(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "internet" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "internet"


def test_the_checks_see_each_kind_of_violation(tmp_path):
    """Each rule, broken once in a made-up package, is reported (so a passing layout test means something)."""
    long_body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "config.py": "",
            "utils/__init__.py": "",
            "utils/low.py": "def f():\n    from internet.model.net import g  # upwards, inside a function\n",
            "model/__init__.py": "",
            "model/net.py": f"from internet.utils.low import _hidden\n\n\ndef g():\n{long_body}\n",
            "model/big.py": "x = 1\n" * (MAX_FILE_LINES + 1),
            "model/shm.py": "import torch\n\nt = torch.Storage._new_shared(4)\nbatch_slots = None\n",
        },
    )
    graph = import_graph(pkg)
    assert cycles(graph) == [["model", "utils", "model"]]
    assert any("utils imports internet.model, a layer above it" in v for v in layer_violations(graph))
    assert private_imports(pkg) == ["internet/model/net.py:1: from internet.utils.low import _hidden"]
    sizes = size_violations("model", pkg)
    assert any(v.startswith("internet/model/big.py:") for v in sizes)
    assert any(v.startswith("internet/model/net.py:g:") for v in sizes)
    banned = banned_uses(pkg)
    assert any("private torch API (torch.Storage._new_shared)" in v for v in banned)
    assert any("batch_slots" in v for v in banned)
