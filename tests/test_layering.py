"""The layering of the project, read from the source (every import, function-level ones
included):

(a) ``tenants`` never imports ``content`` (content registers its job kinds with the
    platform instead);
(b) no import cycle between project modules;
(c) private names of dependencies (Wagtail, django-ratelimit, django-tenants, Django)
    are used only in ``tenants/adapters/``, one adapter module per dependency, each
    with a test that fails when the dependency changes.

Today's code still breaks these in places that are being fixed: each contract lists
them in its ``KNOWN_VIOLATIONS``, which must shrink to empty. A contract fails on a new
violation and also on a listed one that no longer exists, so that the list cannot go
stale: remove an entry as soon as its fix lands.
"""

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("cms_project", "tenants", "content")
ADAPTERS = "tenants.adapters"
DEPENDENCIES = ("wagtail", "django_ratelimit", "django_tenants", "django")
# Private names of dependencies that the code reaches without importing their owner
# (an attribute of a request or a manager, or a name given to getattr).
KNOWN_PRIVATE_NAMES = frozenset(
    {
        "_cache",
        "_get_raw_host",
        "_wagtail_site",
        "_find_for_request",
        "_get_window",
        "_make_cache_key",
        "_split_rate",
    }
)

# --- known violations: each set must shrink to empty ----------------------------------

# (a) "module imports module"
KNOWN_TENANTS_IMPORTS_CONTENT: set[str] = set()
# (b) the modules of each cycle (a strongly connected component), sorted
KNOWN_CYCLES: set[str] = set()
# (c) "module: what it uses"
KNOWN_PRIVATE_USES: set[str] = set()


# --- reading the imports --------------------------------------------------------------


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    imports: list[tuple[str, int]] = field(default_factory=list)  # (module, line)


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def read_modules(root: Path, packages: Iterable[str]) -> dict[str, Module]:
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name, is_package = _module_name(root, path)
            tree = ast.parse(path.read_text(), filename=str(path))
            modules[name] = Module(name, path, is_package, tree)
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (never executed)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for child in node.body for inner in ast.walk(child)}
    return skipped


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: Module, modules: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports, at any level of the code: ``from a import b``
    is ``a.b`` when that is a module of the project, else ``a``."""
    skipped = _type_checking_only(module.tree)
    for node in ast.walk(module.tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in modules else source), node.lineno


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


# --- the contracts --------------------------------------------------------------------


def tenants_importing_content(modules: dict[str, Module]) -> dict[str, str]:
    """(a) violation -> where."""
    found = {}
    for module in modules.values():
        if not _within(module.name, "tenants"):
            continue
        for imported, line in module.imports:
            if _within(imported, "content"):
                found.setdefault(
                    f"{module.name} imports {imported}", f"{module.path}:{line}"
                )
    return found


def import_cycles(modules: dict[str, Module]) -> dict[str, str]:
    """(b) the modules of each cycle -> one cycle through them, spelled out."""
    graph = {
        name: sorted(
            {imported for imported, _ in module.imports if imported in modules}
        )
        for name, module in modules.items()
    }
    found = {}
    for component in _strongly_connected(graph):
        if len(component) > 1 or component[0] in graph[component[0]]:
            found[", ".join(sorted(component))] = _one_cycle(graph, set(component))
    return found


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep import chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _one_cycle(graph: dict[str, list[str]], members: set[str]) -> str:
    """A shortest cycle through the component's first module, as ``a -> b -> a``."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in graph[node]:
            if child == start:
                return " -> ".join([*paths[node], start])
            if child in members and child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return start


# Underscored by name but documented public API of Django (the Model _meta API, the
# managers every model has).
PUBLIC_UNDERSCORED = frozenset({"_meta", "_default_manager", "_base_manager"})


def _is_private(name: str) -> bool:
    return (
        name.startswith("_")
        and not name.startswith("__")
        and name not in PUBLIC_UNDERSCORED
    )


def _dependency(name: str) -> bool:
    return any(_within(name, dependency) for dependency in DEPENDENCIES)


def private_dependency_uses(modules: dict[str, Module]) -> dict[str, str]:
    """(c) "module: what" -> where, outside ``tenants.adapters``.

    Migrations are left out: they are generated, frozen history, and name the
    callables a model field had when they were made (django-tenants' schema name
    validator); rewriting them would not change what runs today."""
    found = {}
    for module in modules.values():
        if _within(module.name, ADAPTERS) or ".migrations." in f"{module.name}.":
            continue
        for what, line in _private_uses(module):
            found.setdefault(f"{module.name}: {what}", f"{module.path}:{line}")
    return found


def _private_uses(module: Module) -> Iterator[tuple[str, int]]:
    origins: dict[str, str] = {}  # local name -> the dependency it was imported from
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _dependency(alias.name):
                    # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`
                    top = alias.name.partition(".")[0]
                    origins[alias.asname or top] = alias.name if alias.asname else top
                if any(_is_private(part) for part in alias.name.split(".")):
                    if _dependency(alias.name):
                        yield f"import {alias.name}", node.lineno
        elif isinstance(node, ast.ImportFrom) and not node.level:
            source = node.module or ""
            if not _dependency(source):
                continue
            for alias in node.names:
                origins[alias.asname or alias.name] = f"{source}.{alias.name}"
                if _is_private(alias.name) or any(
                    _is_private(part) for part in source.split(".")
                ):
                    yield f"from {source} import {alias.name}", node.lineno
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in origins:
                owner = ast.unparse(node.value).replace(root.id, origins[root.id], 1)
                yield f"{owner}.{node.attr}", node.lineno
            elif node.attr in KNOWN_PRIVATE_NAMES:
                yield f"<object>.{node.attr}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in KNOWN_PRIVATE_NAMES
        ):
            yield f"{node.func.id}(<object>, {node.args[1].value!r})", node.lineno


# --- the tests ------------------------------------------------------------------------


def _compare(found: dict[str, str], known: set[str], what: str) -> list[str]:
    problems = [
        f"NEW {what}: {violation} ({found[violation]})"
        for violation in sorted(set(found) - known)
    ]
    problems += [
        f"FIXED, remove it from the known violations: {violation}"
        for violation in sorted(known - set(found))
    ]
    return problems


@pytest.fixture(scope="module")
def project_modules() -> dict[str, Module]:
    modules = read_modules(REPO_ROOT, PROJECT_PACKAGES)
    assert {"tenants.models", "content.models", "cms_project.settings.base"} <= set(
        modules
    )
    return modules


def test_tenants_never_imports_content(project_modules):
    found = tenants_importing_content(project_modules)

    problems = _compare(found, KNOWN_TENANTS_IMPORTS_CONTENT, "tenants -> content")

    assert not problems, "\n".join(problems)


def test_no_import_cycles(project_modules):
    found = import_cycles(project_modules)

    problems = _compare(found, KNOWN_CYCLES, "import cycle")

    assert not problems, "\n".join(problems)


def test_private_names_of_dependencies_only_in_adapters(project_modules):
    found = private_dependency_uses(project_modules)

    problems = _compare(found, KNOWN_PRIVATE_USES, "private name outside adapters")

    assert not problems, "\n".join(problems)


# --- the checks themselves catch what they are for ------------------------------------


PLANTED = {
    "tenants/__init__.py": "",
    "tenants/adapters/__init__.py": "",
    "tenants/adapters/ratelimit.py": (
        "from django_ratelimit.core import _split_rate\n"
        "from wagtail.models import Site\n"
        "def find(request):\n    return Site._find_for_request(request)\n"
    ),
    "tenants/queue.py": (
        "def kinds():\n    from content.jobs import KINDS\n    return KINDS\n"
    ),
    "tenants/limits.py": (
        "from django_ratelimit import core as ratelimit_core\n"
        "import django_ratelimit.core as ratelimit_module\n"
        "def key():\n    return ratelimit_module._make_cache_key\n"
        "from django.contrib.contenttypes.models import ContentType\n"
        "if TYPE_CHECKING:\n    from content import models\n"
        "def window(rate):\n    return ratelimit_core._get_window('x', rate)\n"
        "def drop():\n    ContentType.objects._cache.clear()\n"
        "def site(request):\n    return getattr(request, '_wagtail_site', None)\n"
        "def mine(thing):\n    return thing._private\n"
    ),
    "content/__init__.py": "",
    "content/jobs.py": "from content import tasks\nKINDS = {}\n",
    "content/tasks.py": "def run():\n    from . import scheduling\n",
    "content/scheduling.py": "import content.jobs\n",
    "content/edge.py": "def host(request):\n    return request._get_raw_host()\n",
}


@pytest.fixture
def planted_modules(tmp_path) -> dict[str, Module]:
    for relative, source in PLANTED.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return read_modules(tmp_path, ("tenants", "content"))


def test_planted_violations_are_found(planted_modules):
    assert tenants_importing_content(planted_modules).keys() == {
        "tenants.queue imports content.jobs"
    }
    assert import_cycles(planted_modules) == {
        "content.jobs, content.scheduling, content.tasks": (
            "content.jobs -> content.tasks -> content.scheduling -> content.jobs"
        )
    }
    assert private_dependency_uses(planted_modules).keys() == {
        "tenants.limits: django_ratelimit.core._get_window",
        "tenants.limits: django_ratelimit.core._make_cache_key",
        "tenants.limits: django.contrib.contenttypes.models.ContentType.objects._cache",
        "tenants.limits: getattr(<object>, '_wagtail_site')",
        "content.edge: <object>._get_raw_host",
    }


def test_a_stale_known_violation_fails_too():
    problems = _compare({"a imports b": "a.py:1"}, {"c imports d"}, "x")

    assert problems == [
        "NEW x: a imports b (a.py:1)",
        "FIXED, remove it from the known violations: c imports d",
    ]
