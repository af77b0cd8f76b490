"""The code's map stays true: every module is named where a reader looks for it.

The README sends readers to each package's `__init__.py`, whose docstring maps its files; a module
missing from that map is found only by listing the directory. Read with `ast`: nothing is imported.
"""

import ast
from pathlib import Path

import lengthgen

PACKAGE = Path(lengthgen.__file__).parent


def unmapped_modules(package: Path) -> list[str]:
    """Modules (relative paths) not named in the docstring of their package's `__init__.py`."""
    missing = []
    for init in sorted(package.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        for module in sorted(init.parent.glob("*.py")):
            if module.name not in ("__init__.py", "__main__.py") and module.name not in doc:
                missing.append(str(module.relative_to(package)))
    return missing


def test_every_module_is_named_in_its_package_map():
    assert unmapped_modules(PACKAGE) == []


def test_a_module_left_off_the_map_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""Map.\n\nsub/  a package\n"""\n')
    (package / "sub" / "__init__.py").write_text('"""Map.\n\nnamed.py  is here\n"""\n')
    (package / "sub" / "named.py").write_text("")
    (package / "sub" / "forgotten.py").write_text("")
    assert unmapped_modules(package) == ["sub/forgotten.py"]
