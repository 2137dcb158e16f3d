"""Import bcc (the distribution's ``python3-bpfcc``) from a virtual environment.

bcc is not on PyPI (PyPI's ``bcc`` is an unrelated project); Debian installs it
under ``/usr/lib/python3/dist-packages``, which a venv does not see. Putting that
whole directory on ``sys.path`` could shadow venv packages (an older rich,
PyYAML, ...), so this loads *only* the ``bcc`` package from it, by path. bcc is
pure Python over ``libbcc.so`` (ctypes) and imports nothing but the stdlib.

Optional: ``load_bcc()`` returns ``(None, why)`` instead of raising.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: Where distributions put bcc's Python package (Debian/Ubuntu, then Fedora/Arch style).
DIST_DIRS: tuple[str, ...] = (
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3.11/site-packages",
    "/usr/lib/python3.12/site-packages",
    "/usr/lib/python3.13/site-packages",
    "/usr/lib64/python3/site-packages",
)

INSTALL_HINT = "bcc not installed (apt install python3-bpfcc)"


def _already_importable() -> ModuleType | None:
    spec = importlib.util.find_spec("bcc")
    if spec is None or spec.origin is None:
        return None
    module = importlib.import_module("bcc")
    # PyPI's unrelated "bcc" has no BPF class.
    return module if hasattr(module, "BPF") else None


def _load_from(pkg_dir: Path) -> ModuleType:
    """Import ``pkg_dir`` (a directory holding bcc/__init__.py) as the package ``bcc``."""
    spec = importlib.util.spec_from_file_location(
        "bcc", pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {pkg_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module  # its submodules do "from .libbcc import ..." via this entry
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
            del sys.modules[name]
        raise
    return module


def load_bcc(dirs: tuple[str, ...] = DIST_DIRS) -> tuple[ModuleType | None, str]:
    """The ``bcc`` module and "", or None and why it is not usable (one line)."""
    loaded = sys.modules.get("bcc")
    if loaded is not None and hasattr(loaded, "BPF"):
        return loaded, ""
    try:
        module = _already_importable()
        if module is not None:
            return module, ""
    except Exception:  # a broken or foreign "bcc" on sys.path: try the distribution's
        pass
    for d in dirs:
        pkg = Path(d) / "bcc"
        if not (pkg / "__init__.py").is_file():
            continue
        try:
            module = _load_from(pkg)
        except OSError as exc:  # libbcc.so missing or unloadable
            return None, f"bcc found at {pkg} but libbcc failed to load: {exc}"
        except Exception as exc:
            return None, f"bcc found at {pkg} but failed to import: {type(exc).__name__}: {exc}"
        if not hasattr(module, "BPF"):
            return None, f"{pkg} is not the BPF Compiler Collection"
        return module, ""
    return None, INSTALL_HINT
