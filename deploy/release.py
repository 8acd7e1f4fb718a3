"""``make release``: build one versioned release artifact, to be promoted unchanged through
every environment (development → staging → production).

``dist/releases/sensorhub-<version>.tar.gz`` (and its ``.sha256``) holds, under
``sensorhub-<version>/``:

- the wheel, and ``wheelhouse/`` with every runtime dependency as a wheel, so a node installs
  with ``pip install --no-index`` (no registry at deploy time, the same bits everywhere);
- ``constraints.txt``: the pins the release was built with;
- ``deploy/``: the Ansible playbook and role, the systemd unit, the nginx site;
- ``CHANGELOG.md``, ``RELEASE.json`` (version, commit, Python and platform it targets) and
  ``SHA256SUMS`` over every file above.

The version comes from ``sensorhub/__version__.py``. ``SENSORHUB_RELEASE_VERSION`` overrides it
for a build of the same tree under another version (the deploy test builds N, N+1, N+2 this way):
the tree is copied and the copy's ``__version__.py`` rewritten, the repository is never edited.

A public version (no ``+local`` part) must have a ``## [<version>]`` section in CHANGELOG.md and
be built from a clean checkout; a local version (``0.1.0+ci.3``) is a test build and may not.
A version is built once: an existing artifact is never overwritten.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIRS = ("deploy/ansible", "deploy/systemd", "deploy/nginx")
VERSION_ENV = "SENSORHUB_RELEASE_VERSION"


class ReleaseError(Exception):
    """What stopped the release, and how to fix it (one line for the operator)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "dist" / "releases"), help="output folder")
    args = parser.parse_args(argv)
    try:
        archive = build_release(Path(args.out), os.environ.get(VERSION_ENV) or None)
    except ReleaseError as error:
        sys.stderr.write(f"make release: {error}\n")
        return 1
    sys.stdout.write(f"{archive}\n")
    return 0


def build_release(out: Path, version_override: str | None = None) -> Path:
    version = check_version(version_override or tree_version())
    name = f"sensorhub-{version}"
    archive = out / f"{name}.tar.gz"
    if archive.exists():
        raise ReleaseError(
            f"{archive} exists: a version is built once and promoted unchanged; bump "
            "sensorhub/__version__.py (and CHANGELOG.md) for a new release"
        )
    commit, dirty = git_state()
    public = not version.local
    if public and dirty:
        raise ReleaseError(
            f"the checkout has uncommitted changes: commit them before releasing {version} "
            f"(or build a test release with {VERSION_ENV}={version}+local.1)"
        )
    if public and changelog_section(version) is None:
        raise ReleaseError(
            f"CHANGELOG.md has no section '## [{version}]': add one saying what this release "
            "changed, then run make release again"
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sensorhub-release-") as scratch:
        source = copy_tracked_tree(Path(scratch) / "src", commit is not None)
        if version_override:
            write_version(source, version)
        stage = Path(scratch) / name
        wheel = build_wheel(source, stage)
        fill_wheelhouse(wheel, stage / "wheelhouse")
        shutil.copy(ROOT / "requirements" / "constraints.txt", stage / "constraints.txt")
        shutil.copy(ROOT / "CHANGELOG.md", stage / "CHANGELOG.md")
        for folder in DEPLOY_DIRS:
            shutil.copytree(source / folder, stage / folder)
        metadata = {
            "version": str(version),
            "wheel": wheel.name,
            "commit": commit,
            "dirty": dirty,
            # The wheelhouse holds binary wheels: nodes need this Python and platform.
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "platform": sys.platform + "-" + os.uname().machine,
        }
        (stage / "RELEASE.json").write_text(json.dumps(metadata, indent=2) + "\n")
        write_checksums(stage)
        partial = archive.with_suffix(".partial")
        # Wheels are compressed already: a light gzip level costs little size and much less time.
        with tarfile.open(partial, "w:gz", compresslevel=3) as tar:
            tar.add(stage, arcname=name, filter=_normalised)
        partial.rename(archive)
    digest = sha256(archive)
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")
    return archive


def tree_version() -> str:
    spec = importlib.util.spec_from_file_location("_version", ROOT / "sensorhub/__version__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.__version__)


def check_version(raw: str) -> Version:
    try:
        version = Version(raw)
    except InvalidVersion:
        raise ReleaseError(
            f"{raw!r} is not a PEP 440 version (e.g. 0.2.0, or 0.2.0+ci.1 for a test build)"
        ) from None
    if str(version) != raw:
        raise ReleaseError(f"write the version {raw!r} in its normal form: {version}")
    return version


def git_state() -> tuple[str | None, bool]:
    """The commit the tree is at and whether it has uncommitted changes (None, False outside a
    git checkout, e.g. an unpacked sdist)."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError):
        return None, False
    return commit, bool(_git("status", "--porcelain").strip())


def _git(*args: str) -> str:
    return subprocess.run(  # noqa: S603 - fixed arguments
        ["git", *args],  # noqa: S607 - whichever git the operator has
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def changelog_section(version: Version) -> str | None:
    text = (ROOT / "CHANGELOG.md").read_text()
    match = re.search(rf"^## \[{re.escape(str(version))}\].*?(?=^## |\Z)", text, re.M | re.S)
    return match[0] if match else None


def copy_tracked_tree(target: Path, in_git: bool) -> Path:
    """The files git tracks or would track (not ignored), as they are in the working tree: no
    venv, build output or local database slips into a release."""
    if in_git:
        names = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    else:
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def write_version(source: Path, version: Version) -> None:
    (source / "sensorhub" / "__version__.py").write_text(
        f'"""Rewritten by deploy/release.py for a build as {version}."""\n\n'
        f"VERSION = {tuple(version.release)!r}\n"
        f'__version__ = "{version}"\n'
    )


def build_wheel(source: Path, stage: Path) -> Path:
    stage.mkdir(parents=True)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(stage), str(source))
    wheels = list(stage.glob("sensorhub-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(f"expected one sensorhub wheel in {stage}, found {wheels}")
    return wheels[0]


def fill_wheelhouse(wheel: Path, wheelhouse: Path) -> None:
    """Every runtime dependency (with the PostgreSQL driver) as a wheel, at the pinned version.

    The pins are exact, so the wheels of earlier releases are the same files: they are kept in
    build/wheelhouse-cache and the registry is asked only for what is not there yet."""
    cache = ROOT / "build" / "wheelhouse-cache"
    requirement = f"sensorhub[postgresql] @ {wheel.as_uri()}"
    pinned = ("--only-binary=:all:", "--constraint", str(ROOT / "requirements/constraints.txt"))

    def from_cache() -> None:
        _pip(
            "download",
            "--no-index",
            "--find-links",
            str(cache),
            *pinned,
            "-d",
            str(wheelhouse),
            requirement,
        )

    try:
        from_cache()
    except ReleaseError:
        _pip("download", *pinned, "--dest", str(cache), requirement)
        from_cache()
    (wheelhouse / wheel.name).unlink(missing_ok=True)  # it sits beside the wheelhouse


def _pip(*args: str) -> None:
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ReleaseError(f"pip {args[0]} failed:\n{result.stdout}{result.stderr}")


def write_checksums(stage: Path) -> None:
    lines = [
        f"{sha256(path)}  {path.relative_to(stage).as_posix()}"
        for path in sorted(stage.rglob("*"))
        if path.is_file()
    ]
    (stage / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Who built it, and when, is no part of what is deployed.
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


if __name__ == "__main__":
    sys.exit(main())
