"""Deterministic zips and the build manifest: one definition shared by the build and the local runner.

Stdlib only, because ``scripts/build.py`` imports it before any virtualenv exists. Zips are byte-for-byte
reproducible (sorted entries, fixed timestamps, fixed modes) so Terraform's ``source_code_hash`` only
changes when the content does. The manifest records each artifact's SHA-256 in the base64 form Lambda
reports as ``CodeSha256``: the local runner matches deployed functions and layers to built files with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.json"
LAYER_ZIP = "layer.zip"
# The earliest timestamp a zip entry can hold; any fixed value works, this one is conventional.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Regular file, rw-r--r--: Lambda only needs read access, and fixed bits keep the hash stable.
_FILE_MODE = 0o100644
_UNIX = 3


@dataclass(frozen=True)
class Artifact:
    """What the manifest says about one built zip."""

    path: str
    kind: str
    sha256: str
    code_sha256: str
    size: int
    unzipped_size: int


def write_deterministic_zip(target: Path, entries: Iterable[tuple[str, Path]]) -> None:
    """Zip ``(archive name, source file)`` pairs so equal inputs give equal bytes.

    Written to a temporary name and renamed, so a reader never sees half a zip.
    """
    ordered = sorted(entries, key=lambda entry: entry[0])
    names = [name for name, _ in ordered]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate entries in {target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in ordered:
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    os.replace(partial, target)


def describe(path: Path, kind: str, relative_to: Path) -> Artifact:
    """Hash and measure one zip the way Lambda does (SHA-256 of the zip bytes)."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return Artifact(
        path=path.relative_to(relative_to).as_posix(),
        kind=kind,
        sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode("ascii"),
        size=path.stat().st_size,
        unzipped_size=unzipped,
    )


def write_manifest(build_dir: Path) -> list[Artifact]:
    """Describe every zip directly in ``build_dir``: ``layer.zip`` is the layer, the rest are functions."""
    artifacts = [
        describe(path, "layer" if path.name == LAYER_ZIP else "function", build_dir)
        for path in sorted(build_dir.glob("*.zip"))
    ]
    document = {"artifacts": {artifact.path: asdict(artifact) for artifact in artifacts}}
    (build_dir / MANIFEST_NAME).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return artifacts


def load_manifest(build_dir: Path) -> dict[str, Artifact]:
    """Read the manifest, keyed by ``code_sha256`` (the value the emulator reports)."""
    manifest_path = build_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: run `python scripts/build.py` first")
    document = json.loads(manifest_path.read_text())
    by_code_sha: dict[str, Artifact] = {}
    for entry in document["artifacts"].values():
        artifact = Artifact(**entry)
        by_code_sha[artifact.code_sha256] = artifact
    return by_code_sha
