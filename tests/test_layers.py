"""The layers import only downward, and no two modules import each other (directly or round a loop).

    contract (torch-free)  <- device runtime (torch-free)  <- exporters <- app <- host tooling
    contract               <- authoring core               <- exporters
    contract, device       <- fleet (torch-free, Flower)   <- app

Every import counts, also those inside functions: a lazy import still ties the layers.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("edgetune", "exporters", "device_harness")

# layer -> module prefixes (a module belongs to the layer of its longest matching prefix)
LAYERS = {
    "contract": ("edgetune", "edgetune.errors", "edgetune.files", "edgetune.contract", "edgetune.data"),
    "device": ("device_harness", "device_harness.runner", "device_harness.runtimes", "device_harness.facts",
               "device_harness.conformance"),
    "authoring": ("edgetune.prepared", "edgetune.adapters", "edgetune.quant", "edgetune.step", "edgetune.models"),
    "exporters": ("exporters",),
    "fleet": ("edgetune.fleet",),
    "app": ("edgetune.app",),
    "host": ("device_harness.host", "device_harness.__main__"),
}
ALLOWED = {
    "contract": {"contract"},
    "device": {"contract", "device"},
    "authoring": {"contract", "authoring"},
    "exporters": {"contract", "device", "authoring", "exporters"},
    "fleet": {"contract", "device", "fleet"},
    "app": {"contract", "device", "authoring", "exporters", "fleet", "app"},
    "host": {"contract", "device", "authoring", "exporters", "fleet", "app", "host"},
}
TORCH_FREE = ("contract", "device", "fleet")


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


MODULES = modules()


def layer_of(mod: str) -> str:
    best, layer = -1, None
    for name, prefixes in LAYERS.items():
        for pre in prefixes:
            if (mod == pre or mod.startswith(pre + ".")) and len(pre) > best:
                best, layer = len(pre), name
    assert layer is not None, f"{mod} belongs to no layer: add it to LAYERS in {__file__}"
    return layer


def imports(mod: str) -> set[str]:
    """Project modules ``mod`` imports (``from pkg import name`` counts pkg.name where it is a module)."""
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        found |= {n for n in names if n.split(".")[0] in PACKAGES and n in MODULES and n != mod}
    return found


def third_party(mod: str) -> set[str]:
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_every_module_has_a_layer():
    assert {layer_of(m) for m in MODULES} == set(LAYERS)


def upward_imports(mod: str) -> list[str]:
    mine = layer_of(mod)
    return sorted(f"{t} ({layer_of(t)})" for t in imports(mod) if layer_of(t) not in ALLOWED[mine])


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_only_downward(mod):
    upward = upward_imports(mod)
    mine = layer_of(mod)
    assert not upward, f"{mod} ({mine}) imports {upward}; {mine} may import only {sorted(ALLOWED[mine])}"


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if layer_of(m) in TORCH_FREE))
def test_contract_and_device_layers_are_torch_free(mod):
    heavy = third_party(mod) & {"torch", "transformers", "onnx", "onnxscript"}
    # the ExecuTorch program adapter needs torch tensors; it imports them only on that path
    if mod == "device_harness.runtimes":
        heavy -= {"torch"}
    assert not heavy, f"{mod} imports {sorted(heavy)}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle({m: imports(m) for m in MODULES})
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    """The checker itself: a contract module importing the app layer, and a two-module loop."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from edgetune.app.cli import main\n", encoding="utf-8")
    monkeypatch.setitem(MODULES, "edgetune.contract.fake", fake)
    assert upward_imports("edgetune.contract.fake") == ["edgetune.app.cli (app)"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
