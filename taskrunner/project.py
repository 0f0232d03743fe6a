"""Where the project is: the folder that default task names and the embedded server's
data directory are relative to, found the same way from any folder inside it."""

from __future__ import annotations

import os
from pathlib import Path

# A folder holding one of these is a project's root.
ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(start: Path | str | None = None) -> Path | None:
    """The nearest folder at or above `start` (default: the current directory) that holds
    a pyproject.toml, setup.py, setup.cfg or .git; None when there is none."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return None


def script_module_name(path: Path | str) -> str | None:
    """The dotted name under which a Python file run as a script is importable.

    Inside a regular package (folders with __init__.py) it is the path from the folder
    above the top package (`src/app/tasks.py` -> `app.tasks`); otherwise the path from
    the project root (`examples/quickstart.py` -> `examples.quickstart`). None when the
    file lies outside any project and any package.
    """
    file = Path(path).resolve()
    if file.suffix != ".py":
        return None
    parts = [file.stem] if file.stem != "__init__" else []
    folder = file.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if folder == file.parent:  # not inside a regular package: from the project's root
        root = project_root(file.parent)
        if root is None:
            return None
        parts = [*file.parent.relative_to(root).parts, *parts]
    if not parts or not all(name.isidentifier() for name in parts):
        return None
    return ".".join(parts)
