"""The house's shape, read from the source: rooms import only the rooms below them, every in-package import
names something that exists, and each import made inside a function has its reason.

A room is a package under ``tvmc_transfer/`` (``build``, ``tune``, ...) or a module at its top (``target``,
``compiler``). ``LAYERS`` lists them from the bottom up, in the order of the pipeline; a room may import its own
modules and any room of a lower layer, never one of its own layer or above. That rules out import cycles
between rooms, late imports included (docs/design.md draws the same tree).
"""

import ast
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tvmc_transfer")

LAYERS = [
    {"errors", "threads", "session"},  # leaf utilities: no TVM at import
    {"atomic"},  # atomic writes; a report to a missing folder is the user's error (errors)
    {"target"},  # what users type -> a TVM target, the CPU's features
    {"kernels"},  # a kernel's identity and class, replaying a schedule on it, checking it numerically
    {"records", "frontends"},  # tuning records folders; model loading and its inference simplification
    {"build"},  # lowering passes, build pipeline, task extraction, packages, cross-compiling
    {"run", "defaults"},  # running packages (local, RPC); the shipped library, cost model, default schedules
    {"tune"},  # the tuning engine: MetaSchedule wired once, measuring, seeds, progress
    {"droplet", "compiler"},  # droplet search (a strategy of the engine); compile_model
    {"transfer"},  # transfer-tuning
    {"cli"},  # every command line option and its default
    {"main", "__init__"},  # the driver and the lazy Python API
    {"__main__"},  # python -m tvmc_transfer
]

# Imports made inside a function for a reason other than keeping TVM out of `tvmc --help` and the Python API's
# names (which the test finds by itself): (importing module, imported module) -> why.
LATE_FOR_OTHER_REASONS = {
    ("records.database", "records.screen"): "screen.py reads lines with database.py's helpers: a cycle inside records",
    ("__init__", "*"): "the public API is imported lazily, name by name (PEP 562 __getattr__)",
}


def _modules() -> dict:
    """``{dotted name under tvmc_transfer: (path, is_package)}``."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                package = rel == "__init__" or rel.endswith(".__init__")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = (path, package)
    return found


MODULES = _modules()


def _room(module: str) -> str:
    return module.split(".")[0]


def _layer(room: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def _top_level_names(path: str) -> set:
    names = set()
    for node in ast.parse(open(path, encoding="utf-8").read()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):  # names bound under `if`/`try` at module level
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in sub.names)
                elif isinstance(sub, ast.Assign):
                    names.update(n.id for t in sub.targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _imports() -> list:
    """``[(importer, imported module, [names], late, line)]`` for every in-package import."""
    out = []
    for module, (path, package) in MODULES.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if not (node.module or "").startswith("tvmc_transfer"):
                        continue
                    target = node.module[len("tvmc_transfer") + 1 :] if node.module != "tvmc_transfer" else "__init__"
                else:
                    base = module.split(".") if package else module.split(".")[:-1]
                    if module == "__init__":
                        base = []
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else [])) or "__init__"
                names = [a.name for a in node.names]
                submodules = [n for n in names if (f"{target}.{n}" if target != "__init__" else n) in MODULES]
                for name in submodules:  # `from . import cli`: an import of the module cli
                    out.append((module, f"{target}.{name}" if target != "__init__" else name, [], id(node) in inside, node.lineno))
                if len(submodules) < len(names):
                    out.append((module, target, [n for n in names if n not in submodules], id(node) in inside, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("tvmc_transfer."):
                        out.append((module, alias.name[len("tvmc_transfer.") :], [], id(node) in inside, node.lineno))
    return out


IMPORTS = _imports()


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in MODULES}
    missing = sorted(r for r in rooms if not any(r in layer for layer in LAYERS))
    assert not missing, f"rooms without a layer in LAYERS: {missing}"


def test_every_in_package_import_names_something_that_exists():
    wrong = []
    for importer, target, names, _, line in IMPORTS:
        if target not in MODULES:
            wrong.append(f"{importer}:{line}: no module {target}")
            continue
        defined = _top_level_names(MODULES[target][0])
        for name in names:
            submodule = f"{target}.{name}" if target != "__init__" else name
            if name != "*" and name not in defined and submodule not in MODULES:
                wrong.append(f"{importer}:{line}: {target} has no {name}")
    assert not wrong, "\n".join(wrong)


def test_rooms_import_only_lower_layers():
    upward = sorted(
        {f"{importer} -> {target} (line {line}{', late' if late else ''})" for importer, target, names, late, line in IMPORTS
         if _room(importer) != _room(target) and _layer(_room(target)) >= _layer(_room(importer))
         and not (target == "__init__" and names == ["__version__"])}  # the version, set before any import
    )
    assert not upward, "imports that reach up or sideways (a cycle waiting to happen):\n" + "\n".join(upward)


# The Python API's names that load TVM when first used: droplet search's (its strategy is a TVM class).
API_LOADING_TVM = {"refine_with_droplet", "DropletOptions", "droplet_phase"}


def _loaded(code: str) -> set:
    """The package's modules that ``code`` loads in a fresh interpreter, which must not import TVM."""
    code = f"import sys\n{code}\nprint(int('tvm' in sys.modules)); print(' '.join(k for k in sys.modules if k.startswith('tvmc_transfer')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "0", f"this imports TVM: {code}"
    return {m[len("tvmc_transfer.") :] if m != "tvmc_transfer" else "__init__" for m in out[1].split()}


def _light() -> list:
    """What ``tvmc --help`` loads, and what the Python API's names load (but ``API_LOADING_TVM``'s): neither
    may import TVM (checked here), so what their modules need from a module that does, or from one their entry
    point does not otherwise load, is imported inside the function that needs it."""
    return [
        _loaded("import tvmc_transfer.main as m; m.build_parser()"),
        _loaded(f"import tvmc_transfer as t; [getattr(t, n) for n in t._API if n not in {sorted(API_LOADING_TVM)!r}]"),
    ]


def test_tvmc_help_and_the_api_do_not_import_tvm_and_every_late_import_has_its_reason():
    entry_points = _light()
    unexplained = []
    for importer, target, _, late, line in IMPORTS:
        if not late:
            continue
        if (importer, target) in LATE_FOR_OTHER_REASONS or (importer, "*") in LATE_FOR_OTHER_REASONS:
            continue
        if any(importer in light and target not in light for light in entry_points):
            continue  # keeps TVM (and what else the target loads) out of `tvmc --help` and the API's names
        unexplained.append(f"{importer}:{line} imports {target} inside a function")
    late = {(importer, target) for importer, target, _, is_late, _ in IMPORTS if is_late}
    stale = [pair for pair in LATE_FOR_OTHER_REASONS if pair[1] != "*" and pair not in late]
    assert not stale, f"LATE_FOR_OTHER_REASONS names imports that are no longer late: {stale}"
    assert not unexplained, (
        f"{len(unexplained)} late imports with no reason: import at module level, or name the reason in "
        "LATE_FOR_OTHER_REASONS\n" + "\n".join(unexplained)
    )


@pytest.mark.parametrize("room", ["kernels", "records", "build", "defaults", "tune", "droplet", "transfer"])
def test_a_room_imports_on_its_own(room):
    """Each room imports in a fresh interpreter without its importers loaded first (no hidden order)."""
    subprocess.run([sys.executable, "-c", f"import tvmc_transfer.{room}"], check=True)
