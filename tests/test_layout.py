"""The package's layout: each stage imports only the stages docs/ARCHITECTURE.md allows it."""

import ast
import pathlib

import biax_keras

PACKAGE = pathlib.Path(biax_keras.__file__).parent
# Plain modules at the package's top, of no stage: every stage may import them.
PLAIN = {"errors", "files", "style_names", "sampling_controls"}
# What docs/ARCHITECTURE.md says each stage may import, besides the plain modules.
ALLOWED = {
    "music": set(),
    "data": {"music"},
    "nn": set(),
    "generation": {"music", "nn"},
    "train": {"music", "data", "nn", "generation"},
    "app": {"music", "data", "nn", "generation", "train"},
}


def imported_parts(path):
    """The parts of biax_keras (`music`, `errors`, ...) a module imports, lazily or not."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "biax_keras":
                names = [f"biax_keras.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        parts.update(name.split(".")[1] for name in names
                     if name.startswith("biax_keras."))
    return parts


def test_each_stage_imports_only_the_stages_above_it():
    wrong = []
    for stage, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            extra = imported_parts(path) - allowed - PLAIN - {stage}
            if extra:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {sorted(extra)}")
    assert not wrong, wrong


def test_the_plain_modules_import_no_stage():
    for name in PLAIN:
        assert imported_parts(PACKAGE / f"{name}.py") <= PLAIN, name


def test_every_folder_of_the_package_is_a_stage_named_here():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(ALLOWED)


def test_the_controls_old_path_imports_the_same_objects():
    from biax_keras import sampling_controls
    from biax_keras.generation import controls

    assert controls.SamplingControls is sampling_controls.SamplingControls
    assert controls.VERSION == sampling_controls.VERSION
