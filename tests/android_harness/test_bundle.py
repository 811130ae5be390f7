"""The aarch64 runtime bundle: pinned inputs, a layout that runs with nothing from a distribution,
and a corrupt file found by its digest and rebuilt."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from android_harness import bundle as bundles
from android_harness.qemu import QemuUnavailable, find_qemu
from harness.cache import ArtifactCache, CorruptArtifact


def test_the_lock_pins_every_input_by_version_and_sha256():
    lock = bundles.load_lock()
    names = {e["name"] for e in lock["debian"]}
    assert set(bundles.DEB_PACKAGES) == names
    wheels = {w["name"].lower().replace("_", "-"): w["version"] for ws in lock["wheels"].values() for w in ws}
    assert wheels["torch"] == "2.9.1" and wheels["numpy"] == "2.4.6"
    from importlib.metadata import version

    assert wheels["ai-edge-litert"] == version("ai-edge-litert"), "the bundle's LiteRT must be the host's version"
    for entry in lock["debian"] + [w for ws in lock["wheels"].values() for w in ws]:
        assert len(entry["sha256"]) == 64 and entry["url"].startswith(("http://", "https://")), entry
    assert all("aarch64" in w["url"] or "none-any" in w["url"] for ws in lock["wheels"].values() for w in ws)


def test_the_variants_share_the_lock_and_differ_in_their_runtimes():
    full, litert = bundles.key_parts("full"), bundles.key_parts("litert")
    assert "torch" in full["inputs"]["wheels"] and "torch" not in litert["inputs"]["wheels"]
    assert "executorch" in full["inputs"]["wheels"] and "executorch" not in litert["inputs"]["wheels"]
    assert full["inputs"]["debian"] == litert["inputs"]["debian"]
    with pytest.raises(bundles.BundleError, match="unknown bundle variant 'tiny'"):
        bundles.key_parts("tiny")


@pytest.mark.parametrize("broken, message", [
    ({"debian": "x", "wheels": {}}, "expected"),
    ({"debian": [{"name": "libc6"}], "wheels": {}}, "lacks 'version'"),
    ({"debian": [{"name": "a", "version": "1", "url": "u", "size": 1, "sha256": "abc"}], "wheels": {}}, "64 hex"),
])
def test_a_malformed_lock_file_is_a_clear_error(tmp_path, broken, message):
    path = tmp_path / "bundle.lock.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(bundles.BundleError, match=message):
        bundles.load_lock(path)
    path.write_text("{ not json")
    with pytest.raises(bundles.BundleError, match="not valid JSON"):
        bundles.load_lock(path)


def test_a_download_with_another_digest_is_refused_and_nothing_is_kept(tmp_path):
    served = tmp_path / "served.deb"
    served.write_bytes(b"the registry served these bytes")
    entry = {"name": "x", "version": "1", "url": served.as_uri(), "size": served.stat().st_size,
             "sha256": hashlib.sha256(b"what was pinned").hexdigest()}
    downloads = tmp_path / "downloads"
    with pytest.raises(bundles.BundleError, match="differs from the lock's"):
        bundles.fetch(entry, downloads, log=lambda m: None)
    assert list(downloads.iterdir()) == []
    entry["sha256"] = hashlib.sha256(served.read_bytes()).hexdigest()
    assert bundles.fetch(entry, downloads, log=lambda m: None).read_bytes() == served.read_bytes()


@pytest.fixture(scope="module")
def litert_bundle(tmp_path_factory):
    """The LiteRT-only bundle in a cache of its own (downloads shared with the project's cache)."""
    cache = ArtifactCache(tmp_path_factory.mktemp("bundle-cache"), log=lambda m: None)
    downloads = ArtifactCache().root / ".downloads"
    return cache, bundles.get_bundle("litert", cache, downloads=downloads)


def test_the_litert_bundle_runs_under_qemu_with_nothing_from_the_host(litert_bundle, tmp_path):
    try:
        qemu = find_qemu()
    except QemuUnavailable as exc:
        pytest.skip(str(exc))
    _, built = litert_bundle
    assert built.families == ("litert",) and built.versions["ai-edge-litert"] == bundles.load_lock()["wheels"]["litert"][0]["version"]
    assert (built.root / "run.sh").is_file() and (built.root / "lib" / bundles.LOADER).is_file()
    assert not (built.root / "site-packages" / "torch").exists()
    probe = "import platform, sys, numpy, ai_edge_litert.interpreter; print(platform.machine(), sys.prefix, numpy.__version__)"
    env = {"PATH": "/usr/bin:/bin", **built.environment(tmp=str(tmp_path))}
    done = subprocess.run([qemu.path, "-cpu", "cortex-a76", *built.python_argv(), "-c", probe], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    machine, prefix, numpy_version = done.stdout.split()
    assert machine == "aarch64" and prefix == str(built.root) and numpy_version == built.versions["numpy"]
    pyc = list((built.root / "lib" / "python3.11" / "json" / "__pycache__").glob("*.pyc"))
    assert pyc and all(p.read_bytes()[4:8] == b"\x01\x00\x00\x00" for p in pyc), "unchecked-hash .pyc expected"


def test_a_corrupted_bundle_file_is_found_by_its_digest_and_rebuilt(litert_bundle):
    cache, built = litert_bundle
    victim = built.root / "lib" / "python3.11" / "json" / "decoder.py"
    original = victim.read_bytes()
    victim.write_bytes(original.replace(b"def ", b"dfe ", 1))
    with pytest.raises(CorruptArtifact, match="decoder.py"):
        ArtifactCache.verify(built.root, built.key)
    messages = []
    cache.log = messages.append
    rebuilt = bundles.get_bundle("litert", cache, downloads=ArtifactCache().root / ".downloads")
    assert any("discarding corrupt" in m and "decoder.py" in m for m in messages), messages
    assert rebuilt.key == built.key and (rebuilt.root / "lib/python3.11/json/decoder.py").read_bytes() == original
    ArtifactCache.verify(rebuilt.root, rebuilt.key)
