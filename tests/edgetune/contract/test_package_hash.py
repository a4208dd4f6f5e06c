"""A program package's tree hash is the sha256 of `sha256sum`'s listing of its files, sorted by
path bytes (contract section 2), and a package with a link, or too many files, is refused."""
import os
import subprocess

import pytest

from edgetune.contract import manifest as manifest_module
from edgetune.contract.manifest import sha256_program, sha256_tree
from edgetune.errors import ArtifactError

LISTING = "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"


def _package(root):
    for rel, data in [("Manifest.json", b"{}"), ("Data/com.apple.CoreML/model.mlmodel", b"\x00spec"),
                      ("Data/com.apple.CoreML/weights/weight.bin", os.urandom(3000)), ("Data/Zeta", b""),
                      ("Data/a b/é.bin", b"accent"), ("Data/a/x", b"upper-before-lower")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_tree_hash_is_the_sha256_of_sha256sums_sorted_listing(tmp_path):
    pkg = _package(tmp_path / "step.mlpackage")
    want = subprocess.run(["bash", "-c", LISTING], cwd=pkg, capture_output=True, check=True,
                          env={**os.environ, "LC_ALL": "C"}).stdout.split()[0].decode()
    assert sha256_tree(pkg) == sha256_program(pkg) == want
    (pkg / "Data/Zeta").write_bytes(b"x")  # any file's bytes move it
    assert sha256_tree(pkg) != want


def test_a_link_or_too_many_files_are_refused(tmp_path, monkeypatch):
    pkg = _package(tmp_path / "p.mlpackage")
    (pkg / "Data/link").symlink_to(tmp_path)
    with pytest.raises(ArtifactError, match="Data/link is a link or special file"):
        sha256_tree(pkg)
    (pkg / "Data/link").unlink()
    monkeypatch.setattr(manifest_module, "MAX_PACKAGE_FILES", 5)
    with pytest.raises(ArtifactError, match="holds more than 5 files"):
        sha256_tree(pkg)
