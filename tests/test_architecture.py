"""The dependency rules of docs/architecture.md, read from the source (every import, also those
inside functions): rooms import only rooms below them, no module imports itself in a cycle, the
LUT emulator stands alone, and only ``gnnff.cli`` imports the command adapters."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gnnff"

# layer of each room (package or top-level module); a module may import its own room and rooms
# of a lower layer. Command adapters (``commands.py``, ``*_commands.py``) may reach across
# rooms below cli; cli and demo sit on top.
LAYER = {
    "gnnff": 0, "errors": 0, "_lazy": 0, "io_utils": 0, "segment_ops": 0, "extensions": 0,
    "_mpi_hook": 0, "plugins": 0,  # deprecated aliases (DEPRECATED below)
    "lut_accel": 1,
    "potentials": 2, "stability": 2,
    "training": 3, "calculators": 3, "lammps": 3, "data": 3, "testing": 3,
    "study": 4, "active": 4,
    "demo": 5, "cli": 6,
}  # fmt: skip
# The LAMMPS area's bottom modules (loading the library, the cell convention, the MPI hook)
# import no gnnff room: any layer may use them (data/ labels through the library).
BOTTOM = {"gnnff.lammps.library", "gnnff.lammps.geometry", "gnnff.lammps.mpi_hook"}
# gnnff's exception base and helpers sit under everything: any module may import it, and it
# imports no gnnff module (test_the_error_module_imports_no_gnnff_module)
BASE = {"gnnff.errors"}
# renamed modules kept for one release; each only re-exports its new home (and warns)
DEPRECATED = {
    "gnnff.plugins": "gnnff.extensions",
    "gnnff._mpi_hook": "gnnff.lammps.mpi_hook",
    "gnnff.potentials.model": "gnnff.potentials.allegro.model",
    "gnnff.potentials.allegro_families": "gnnff.potentials.allegro.families",
    "gnnff.potentials.reparam": "gnnff.potentials.allegro.reparam",
    "gnnff.potentials.export": "gnnff.potentials.files",
    "gnnff.potentials.aoti": "gnnff.potentials.files.aoti",
    "gnnff.potentials.registry": "gnnff.potentials.bundled",
    "gnnff.potentials.softmax_eval": "gnnff.potentials.analysis.softmax_eval",
    "gnnff.potentials.short_range": "gnnff.potentials.analysis.short_range",
    "gnnff.training.synthetic": "gnnff.testing.synthetic",
}
# modules still importing a deprecated alias, owned by another branch (switch them to the new
# module, then empty this set)
DEPRECATED_USERS_PENDING: set[str] = set()
# gnnff/potentials, one concern per place (docs/architecture.md): the model interface and
# contract at the top, one sub-package or module per other trade
POTENTIALS_INTERFACE = {
    "gnnff.potentials", "gnnff.potentials.base", "gnnff.potentials.families",
    "gnnff.potentials.config", "gnnff.potentials.build", "gnnff.potentials.contract",
    "gnnff.potentials.softmax", "gnnff.potentials.blocks", "gnnff.potentials.neighbors",
    "gnnff.potentials.device",
}  # fmt: skip
POTENTIALS_PLACES = {
    "allegro": "gnnff.potentials.allegro",  # the allegro implementation
    "files": "gnnff.potentials.files",  # model-file I/O: checkpoints, export, load, AOTI
    "analysis": "gnnff.potentials.analysis",  # softmax_eval, the short-range prior fit
    "bundled": "gnnff.potentials.bundled",  # the bundled models (pretrained/)
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """gnnff modules imported anywhere in module ``name`` (resolved to existing modules)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts) + (f".{node.module}" if node.module else "")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name and target.startswith("gnnff"):
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _room(name: str) -> str:
    return name.split(".")[1] if "." in name else "gnnff"


def _is_adapter(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "commands" or last.endswith("_commands")


def _layer(name: str) -> int:
    return 0 if name in BOTTOM else LAYER[_room(name)]


def test_every_room_has_a_layer():
    assert {_room(m) for m in MODULES} <= set(LAYER), "add the new room to LAYER and the docs"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not _is_adapter(m)
                                         and m not in DEPRECATED))  # fmt: skip
def test_imports_point_downward(name):
    room = _room(name)
    bad = [d for d in GRAPH[name] if _room(d) != room and _layer(d) >= _layer(name)
           and d not in BOTTOM | BASE]  # fmt: skip
    assert not bad, f"{name} imports {bad}: rooms import only rooms below them"


def test_adapters_do_not_reach_up_and_only_cli_imports_them():
    for name in (m for m in MODULES if _is_adapter(m)):
        assert not any(_room(d) in ("cli", "demo") for d in GRAPH[name]), name
        users = [m for m, deps in GRAPH.items() if name in deps and not _is_adapter(m)]
        assert set(users) <= {"gnnff.cli"}, f"{name} is imported by {users}"


def test_lut_accel_stands_alone():
    for name in (m for m in MODULES if _room(m) == "lut_accel"):
        outside = [d for d in GRAPH[name] if _layer(d) >= LAYER["lut_accel"]
                   and _room(d) != "lut_accel"]  # fmt: skip
        assert not outside, f"{name} imports {outside}"


def test_the_registries_import_no_gnnff_module():
    # gnnff.extensions names the built-in modules as strings and imports them on a look-up miss
    assert GRAPH["gnnff.extensions"] <= BASE


def test_the_error_module_imports_no_gnnff_module():
    assert GRAPH["gnnff.errors"] == set()


def test_calculators_and_lammps_never_import_training():
    for name in (m for m in MODULES if _room(m) in ("calculators", "lammps")):
        assert not any(_room(d) == "training" for d in GRAPH[name]), name


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rule_checker_sees_function_level_imports():
    # study.summary imports study.units inside a function; the graph must contain it
    assert "gnnff.study.units" in GRAPH["gnnff.study.summary"]
    assert "gnnff.study.summary" not in GRAPH["gnnff.study.units"]


def test_runtime_never_imports_the_test_helpers():
    users = [m for m, deps in GRAPH.items() if _room(m) != "testing" and m not in DEPRECATED
             and any(_room(d) == "testing" for d in deps)]  # fmt: skip
    assert not users, f"{users} import gnnff.testing (it is for tests only)"


def test_a_float_model_does_not_import_the_lut_emulator():
    # the softmax interface lives in potentials; lut_accel is imported for lut-* backends only
    code = ("import sys, torch; from gnnff.potentials import build_model\n"
            "m = build_model({'family': 'allegro-attn', 'species': ['Si'], 'cutoff': 3.0,"
            " 'num_scalar': 4, 'num_tensor': 2, 'mlp_hidden': [4]})\n"
            "print(sorted(k for k in sys.modules if k.startswith('gnnff.lut_accel')))")  # fmt: skip
    root = str(PKG.parent)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          timeout=300, env={**os.environ, "PYTHONPATH": root})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _place(name: str) -> str:
    """Which trade of gnnff/potentials module ``name`` belongs to."""
    if name in POTENTIALS_INTERFACE:
        return "interface"
    if name in DEPRECATED:
        return "deprecated"
    if _is_adapter(name):
        return "adapter"
    for place, prefix in POTENTIALS_PLACES.items():
        if name == prefix or name.startswith(prefix + "."):
            return place
    return "unplaced"


def test_every_potentials_module_has_its_place():
    unplaced = [m for m in MODULES if _room(m) == "potentials" and _place(m) == "unplaced"]
    assert not unplaced, f"{unplaced}: put each in its trade (POTENTIALS_*, docs/architecture.md)"


def test_the_model_interface_knows_no_implementation_file_or_bundled_model():
    # the package __init__ only names its exports (lazily); everything else at the top is the
    # interface, which builds any family by name and never reaches into one
    for name in POTENTIALS_INTERFACE - {"gnnff.potentials"}:
        below = [d for d in GRAPH[name] if _room(d) == "potentials" and _place(d) != "interface"]
        assert not below, f"{name} imports {below}"


def test_only_the_allegro_package_and_the_family_registry_know_allegro():
    users = [m for m, deps in GRAPH.items() if m != "gnnff.potentials"
             and not (m in DEPRECATED or _place(m) == "allegro")
             and any(_place(d) == "allegro" for d in deps if _room(d) == "potentials")]  # fmt: skip
    assert not users, f"{users} import the allegro implementation; build models by family name"
    # the registry names the built-in family module as a string (imported on a look-up miss)
    assert "gnnff.potentials.allegro.families" in (PKG / "extensions.py").read_text()


def test_model_files_and_analysis_do_not_depend_on_a_family():
    for name in (m for m in MODULES if _room(m) == "potentials"):
        if _place(name) in ("files", "bundled"):
            bad = [d for d in GRAPH[name] if _place(d) in ("allegro", "analysis", "adapter")]
            assert not bad, f"{name} imports {bad}"


def test_nothing_imports_a_deprecated_alias():
    users = sorted(m for m, deps in GRAPH.items() if m not in DEPRECATED
                   and m not in DEPRECATED_USERS_PENDING and deps & set(DEPRECATED))  # fmt: skip
    assert not users, f"{users} import a deprecated module; import its new home ({DEPRECATED})"


def test_deprecated_aliases_exist_and_name_their_new_home():
    # gnnff._mpi_hook stays silent: .pth files of older installs import it at every start-up
    for old, new in DEPRECATED.items():
        text = MODULES[old].read_text()
        assert new in MODULES and new in text, old
        assert "DeprecationWarning" in text or old == "gnnff._mpi_hook", old


def test_only_the_bundled_module_locates_bundled_model_files():
    pretrained = PKG / "potentials" / "pretrained"
    names = {"pretrained"} | {p.name for p in pretrained.iterdir()}
    offenders = []
    for name, path in MODULES.items():
        if name == "gnnff.potentials.bundled":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                right = node.right
                if isinstance(right, ast.Constant) and right.value in names:
                    offenders.append(f"{name}: / {right.value!r}")
    assert not offenders, f"{offenders}: locate bundled files through gnnff.potentials.bundled"
