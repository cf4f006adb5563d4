"""The library's folders are its layers: every import of a module goes to its own layer or one below."""

from __future__ import annotations

import ast
from pathlib import Path

import asam_lib

PACKAGE = Path(asam_lib.__file__).parent


def _layer_of(module: str, layers: tuple[str, ...]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "asam_lib" and parts[1] in layers else None


def imports_of(source: str) -> list[str]:
    """Every ``asam_lib`` module a source imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asam_lib"):
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("asam_lib")]
    return found


def upward_imports(package: Path = PACKAGE, layers: tuple[str, ...] = asam_lib.LAYERS) -> list[str]:
    """``"module -> imported"`` for each import from a module of a higher layer than the importer's."""
    rank = {layer: i for i, layer in enumerate(layers)}
    wrong = []
    for path in sorted(package.glob("*/*.py")):
        own = path.parent.name
        for imported in imports_of(path.read_text()):
            target = _layer_of(imported, layers)
            if target is not None and rank[target] > rank[own]:
                wrong.append(f"{own}/{path.name} -> {imported}")
    return sorted(set(wrong))


def test_every_module_sits_in_a_layer_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert not loose, f"modules outside a layer folder: {loose}"
    assert folders == sorted(asam_lib.LAYERS), f"folders {folders} are not asam_lib.LAYERS {asam_lib.LAYERS}"
    for layer in asam_lib.LAYERS:
        assert f"    {layer} " in asam_lib.__doc__, f"asam_lib's docstring does not describe the layer {layer}"


def test_no_module_imports_from_a_higher_layer():
    wrong = upward_imports()
    assert not wrong, "imports from a higher layer:\n" + "\n".join(wrong)


def test_the_check_finds_an_upward_import(tmp_path):
    for layer in ("low", "high"):
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "high" / "a.py").write_text("from asam_lib.low import b\n")
    (tmp_path / "low" / "b.py").write_text("def f():\n    from asam_lib.high.a import x\n")
    found = upward_imports(tmp_path, ("low", "high"))
    assert found == ["low/b.py -> asam_lib.high.a", "low/b.py -> asam_lib.high.a.x"]
