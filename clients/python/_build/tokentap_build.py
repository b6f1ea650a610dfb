"""A PEP 517 build backend for tokentap that needs nothing but the standard library.

Why not setuptools: the package has no compiled parts and no dependencies, and
a machine without a package index (or with setuptools too old to build wheels
without the `wheel` package) cannot build it with setuptools. This backend
writes the wheel and the sdist with zipfile and tarfile, so
`pip install ./clients/python` works offline, with or without build isolation.

It reads the little it needs from pyproject.toml's [project] table with
tomllib when there is one (Python >= 3.11) and with a small parser for the
flat keys this file uses otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import os
import re
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# Files of the source tree that go into the sdist (besides src/).
SDIST_EXTRA = ["pyproject.toml", "README.md", "_build/tokentap_build.py"]
SDIST_DIRS = ["src", "tests"]


def _project() -> Dict[str, Any]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        tomllib: Any = importlib.import_module("tomllib")  # Python >= 3.11
    except ImportError:
        return _parse_project(text)
    return dict(tomllib.loads(text)["project"])


def _parse_project(text: str) -> Dict[str, Any]:
    """Reads the [project] table's string and string-list keys (Python < 3.11)."""
    out: Dict[str, Any] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section != "project" or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if value.startswith('"'):
            out[key] = value.strip('"')
        elif value.startswith("["):
            out[key] = re.findall(r'"([^"]*)"', value)
    return out


def _name_version() -> Tuple[str, str]:
    p = _project()
    return str(p["name"]), str(p["version"])


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
    ]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    classifiers: List[str] = list(p.get("classifiers") or [])
    for c in classifiers:
        lines.append(f"Classifier: {c}")
    readme = ROOT / "README.md"
    body = ""
    if readme.exists():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text(encoding="utf-8")
    return "\n".join(lines) + "\n" + body


def _wheel_file() -> str:
    return "Wheel-Version: 1.0\nGenerator: tokentap_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files() -> List[Path]:
    files: List[Path] = []
    for path in sorted(SRC.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append(path)
    return files


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{arcname},sha256={digest},{len(data)}"


# A fixed timestamp keeps the archives reproducible (SOURCE_DATE_EPOCH wins).
def _epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01, zip's earliest


def _write_wheel(wheel_directory: str, editable: bool) -> str:
    name, version = _name_version()
    dist = _dist_name(name)
    filename = f"{dist}-{version}-py3-none-any.whl"
    dist_info = f"{dist}-{version}.dist-info"
    entries: List[Tuple[str, bytes]] = []
    if editable:
        # A .pth file puts src/ on sys.path: edits show without a reinstall.
        entries.append((f"__editable__.{dist}.pth", (str(SRC) + "\n").encode("utf-8")))
    else:
        for path in _package_files():
            entries.append((path.relative_to(SRC).as_posix(), path.read_bytes()))
    entries.append((f"{dist_info}/METADATA", _metadata().encode("utf-8")))
    entries.append((f"{dist_info}/WHEEL", _wheel_file().encode("utf-8")))
    entries.append((f"{dist_info}/top_level.txt", b"tokentap\n"))
    record = [_record_line(arc, data) for arc, data in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode("utf-8")))

    date = time.gmtime(max(_epoch(), 315532800))[:6]
    os.makedirs(wheel_directory, exist_ok=True)
    target = os.path.join(wheel_directory, filename)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries:
            info = zipfile.ZipInfo(arc, date_time=date)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return filename


# PEP 517 hooks.


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[Dict[str, Any]] = None
) -> str:
    name, version = _name_version()
    dist_info = f"{_dist_name(name)}-{version}.dist-info"
    path = os.path.join(metadata_directory, dist_info)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    with open(os.path.join(path, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_wheel_file())
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return _write_wheel(wheel_directory, editable=False)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return _write_wheel(wheel_directory, editable=True)


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    name, version = _name_version()
    base = f"{_dist_name(name)}-{version}"
    filename = f"{base}.tar.gz"
    files: List[Path] = [ROOT / f for f in SDIST_EXTRA if (ROOT / f).exists()]
    for d in SDIST_DIRS:
        for path in sorted((ROOT / d).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    pkg_info = _metadata().encode("utf-8")
    os.makedirs(sdist_directory, exist_ok=True)
    target = os.path.join(sdist_directory, filename)
    mtime = _epoch()
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as tf:

        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{base}/{arcname}")
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))

        for path in files:
            add(path.relative_to(ROOT).as_posix(), path.read_bytes())
        add("PKG-INFO", pkg_info)
    return filename
