"""Build the Lambda artifacts into build/: the shared layer, one zip per function, the runtime SDK.

Run as ``python scripts/build.py``. Terraform deploys the zips by ``filename`` + ``source_code_hash``
(the machine's Terraform has no archive provider), so every zip is reproducible: rebuilding unchanged
sources gives identical bytes and no diff. The layer's third-party packages are the exact closure in
shared_layer/requirements.txt, fetched as cp312 manylinux2014_x86_64 wheels (what Lambda python3.12 on
x86_64 runs, whatever machine builds them) and cached under build/.cache by the file's hash.

The build/runtime/ folder holds boto3 + botocore as the Lambda runtime ships them; nothing deploys it,
the local runner puts it last on each worker's sys.path the way the real runtime does.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# scripts/ is on sys.path when this file runs as a script; artifacts.py is stdlib only.
from local_cloud.artifacts import LAYER_ZIP, write_deterministic_zip, write_manifest

ROOT = Path(__file__).resolve().parent.parent
LAYER_REQUIREMENTS = ROOT / "shared_layer" / "requirements.txt"
RUNTIME_REQUIREMENTS = ROOT / "scripts" / "local_cloud" / "lambda-runtime.txt"
SHARED_PACKAGE = ROOT / "shared_layer" / "ai_comms"
LAMBDAS = ROOT / "lambdas"
# Lambda's unzipped limit for a function plus all its layers.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
WHEEL_TARGET = [
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.12",
    "--only-binary=:all:",
    "--no-deps",
]
# Where the layer's python/ folder and the function's zip land in Lambda; compiled code names them
# in tracebacks.
LAYER_MOUNT = "/opt/python"
FUNCTION_MOUNT = "/var/task"
LAMBDA_CACHE_TAG = "cpython-312"
_STAMP = ".requirements-sha256"


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip_install(requirements: Path, target: Path) -> None:
    """Install the pinned wheels for the Lambda platform into ``target`` (no resolver: pins are a closure)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        *WHEEL_TARGET,
        "-r",
        str(requirements),
    ]
    subprocess.run(command, check=True)


def cached_install(requirements: Path, cache_root: Path, label: str, precompile: bool) -> Path:
    """Return a folder holding the installed requirements, reusing the one keyed by the file's hash."""
    key = file_sha256(requirements)[:16]
    cached = cache_root / f"{label}-{key}"
    if (cached / _STAMP).is_file():
        log(f"{label}: cached ({requirements.name} unchanged)")
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    for stale in cache_root.glob(f"{label}-*"):
        shutil.rmtree(stale)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache_root) as scratch:
        staging = Path(scratch) / "tree"
        pip_install(requirements, staging)
        # pip leaves per-install bookkeeping that differs between runs and means nothing in Lambda.
        for record in staging.glob("*.dist-info/RECORD"):
            record.unlink()
        if precompile:
            compile_for_lambda(staging)
        (staging / _STAMP).write_text(file_sha256(requirements) + "\n")
        staging.rename(cached)
    log(f"{label}: installed {requirements.name} in {time.monotonic() - started:.1f} s")
    return cached


def compile_for_lambda(tree: Path) -> None:
    """Ship bytecode: /opt is read-only in Lambda, so without it every cold start compiles the layer.

    Unchecked-hash pycs stay valid whatever mtime the unzipped sources get, and are built once per
    requirements hash (cached), so the layer's bytes stay stable between builds.
    """
    ok = compileall.compile_dir(
        str(tree),
        ddir=LAYER_MOUNT,
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        log("warning: some third-party files did not compile (they still ship as source)")


def bytecode_for(sources: list[tuple[str, Path]], mount: str, scratch: Path) -> list[tuple[str, Path]]:
    """Unchecked-hash bytecode of the project's own modules, beside them in __pycache__.

    Lambda mounts the layer and the function read-only (/opt, /var/task), so without it every cold
    start compiles the engine's own code again. Byte-identical for identical sources, so rebuilding
    changes no CodeSha256. Only an interpreter of the runtime's version can write the runtime's
    bytecode; another one builds sources only.
    """
    if sys.implementation.cache_tag != LAMBDA_CACHE_TAG:
        log(f"warning: {sys.implementation.cache_tag} is not {LAMBDA_CACHE_TAG}; no bytecode for our code")
        return []
    if scratch.exists():
        shutil.rmtree(scratch)
    compiled: list[tuple[str, Path]] = []
    for arcname, path in sources:
        if path.suffix != ".py":
            continue
        folder, _, filename = arcname.rpartition("/")
        pyc_name = f"{folder + '/' if folder else ''}__pycache__/{Path(filename).stem}.{LAMBDA_CACHE_TAG}.pyc"
        target = scratch / pyc_name
        target.parent.mkdir(parents=True, exist_ok=True)
        py_compile.compile(
            str(path),
            cfile=str(target),
            dfile=f"{mount}/{arcname}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        compiled.append((pyc_name, target))
    return compiled


def tree_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != _STAMP:
            yield path


def shared_package_files() -> Iterator[Path]:
    for path in tree_files(SHARED_PACKAGE):
        if "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
            yield path


def build_layer(build_dir: Path) -> None:
    if not SHARED_PACKAGE.is_dir():
        raise SystemExit(f"missing {SHARED_PACKAGE.relative_to(ROOT)}")
    deps = cached_install(LAYER_REQUIREMENTS, build_dir / ".cache", "layer-deps", precompile=True)
    # pip's console scripts (bin/) carry this machine's interpreter path and are useless in Lambda.
    entries = [
        (f"python/{path.relative_to(deps).as_posix()}", path)
        for path in tree_files(deps)
        if path.relative_to(deps).parts[0] != "bin"
    ]
    own = [
        (f"python/ai_comms/{path.relative_to(SHARED_PACKAGE).as_posix()}", path)
        for path in shared_package_files()
    ]
    entries += own + bytecode_for(own, "/opt", build_dir / ".cache" / "bytecode" / "layer")
    write_deterministic_zip(build_dir / LAYER_ZIP, entries)
    log(f"{LAYER_ZIP}: {len(entries)} files")


def function_sources() -> dict[str, list[Path]]:
    """Each lambdas/<name>/ with a handler.py becomes <name>.zip with its modules at the zip root."""
    functions: dict[str, list[Path]] = {}
    for folder in sorted(LAMBDAS.iterdir()) if LAMBDAS.is_dir() else []:
        if (folder / "handler.py").is_file():
            functions[folder.name] = sorted(
                path for path in folder.glob("*.py") if path.name != "__init__.py"
            )
    return functions


def build_functions(build_dir: Path) -> None:
    functions = function_sources()
    expected = {f"{name}.zip" for name in functions} | {LAYER_ZIP}
    for stale in build_dir.glob("*.zip"):
        if stale.name not in expected:
            stale.unlink()
            log(f"removed stale {stale.name}")
    for name, sources in functions.items():
        entries = [(path.name, path) for path in sources]
        entries += bytecode_for(entries, FUNCTION_MOUNT, build_dir / ".cache" / "bytecode" / name)
        write_deterministic_zip(build_dir / f"{name}.zip", entries)
        log(f"{name}.zip: {', '.join(path.name for path in sources)}")
    if not functions:
        log("warning: no lambdas/<name>/handler.py found")


def build_runtime(build_dir: Path) -> None:
    runtime = build_dir / "runtime"
    wanted = file_sha256(RUNTIME_REQUIREMENTS)
    stamp = runtime / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        log("runtime: up to date")
        return
    installed = cached_install(RUNTIME_REQUIREMENTS, build_dir / ".cache", "runtime", precompile=False)
    if runtime.exists():
        shutil.rmtree(runtime)
    shutil.copytree(installed, runtime)
    log("runtime: refreshed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)
    build_dir: Path = args.build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    build_layer(build_dir)
    build_functions(build_dir)
    build_runtime(build_dir)
    artifacts = write_manifest(build_dir)
    layer_size = next((a.unzipped_size for a in artifacts if a.kind == "layer"), 0)
    for artifact in artifacts:
        sizes = f"{artifact.size} bytes, {artifact.unzipped_size} unzipped"
        log(f"{artifact.path}: {sizes}, CodeSha256 {artifact.code_sha256}")
        if artifact.kind == "function" and artifact.unzipped_size + layer_size > LAMBDA_UNZIPPED_LIMIT:
            raise SystemExit(f"{artifact.path} plus the layer exceed Lambda's 250 MB unzipped limit")
    log(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
