"""The artefact cache: content keys, atomic builds, verification, rebuild of corrupt artefacts, locking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cache import MANIFEST, Artifact, ArtifactCache, CacheError, CorruptArtifact, cache_key, canonical_json


REPO = Path(__file__).resolve().parents[1]


def writer(payload: bytes = b"hello", calls: list | None = None, extra: dict | None = None):
    def build(directory: Path) -> dict:
        if calls is not None:
            calls.append(directory)
        (directory / "model.bin").write_bytes(payload)
        (directory / "sub").mkdir()
        (directory / "sub" / "ids.json").write_text("[1, 2, 3]")
        return {"converter": {"optimizations": ["DEFAULT"]}, **(extra or {})}

    return build


@pytest.fixture
def cache(tmp_path):
    return ArtifactCache(tmp_path / "cache", log=lambda message: None)


PARTS = {"weights": "abc", "versions": {"tensorflow": "2.21.0"}, "ids": [3, 1, 2], "seed": 0}


# -- keys ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_key_ignores_dict_order_and_is_a_sha256(parts):
    reordered = dict(reversed(list(parts.items())))
    assert cache_key("k", parts) == cache_key("k", reordered)
    key = cache_key("k", parts)
    assert len(key) == 64 and set(key) <= set("0123456789abcdef")
    assert json.loads(canonical_json(parts)) == json.loads(json.dumps(parts))


def test_key_changes_with_any_part_and_with_the_kind():
    base = cache_key("tflite-int8", PARTS)
    assert cache_key("tflite-float", PARTS) != base
    for name, value in [("weights", "abd"), ("ids", [3, 1]), ("seed", 1), ("versions", {"tensorflow": "2.21.1"})]:
        assert cache_key("tflite-int8", {**PARTS, name: value}) != base, name
    assert cache_key("tflite-int8", {**PARTS, "extra": None}) != base


def test_key_normalises_numpy_and_tuples_but_refuses_ambiguous_values():
    assert cache_key("k", {"ids": np.array([1, 2], dtype=np.int64), "t": (1, 2)}) == cache_key(
        "k", {"ids": [1, 2], "t": [1, 2]})
    assert cache_key("k", {"x": np.float32(0.5)}) == cache_key("k", {"x": 0.5})
    with pytest.raises(CacheError, match="non-finite"):
        cache_key("k", {"x": float("nan")})
    with pytest.raises(CacheError, match="cannot be part of a cache key"):
        cache_key("k", {"x": object()})
    with pytest.raises(CacheError, match="keys must be strings"):
        cache_key("k", {"x": {1: 2}})


# -- build, hit, manifest --------------------------------------------------------------------
def test_build_then_hit_does_no_work(cache):
    calls = []
    first = cache.get_or_build("demo", PARTS, writer(calls=calls))
    assert first.built and len(calls) == 1
    assert first.path == cache.root / "demo" / cache_key("demo", PARTS)
    second = cache.get_or_build("demo", PARTS, writer(calls=calls))
    assert not second.built and len(calls) == 1
    assert second.path == first.path and second.manifest == first.manifest
    assert cache.lookup("demo", PARTS).path == first.path
    assert cache.lookup("demo", {**PARTS, "seed": 1}) is None


def test_journal_has_one_line_per_published_build(cache):
    assert cache.builds() == []
    cache.get_or_build("demo", PARTS, writer(), label="demo set")
    cache.get_or_build("demo", PARTS, writer())  # a hit: not journalled

    def broken(directory: Path):
        (directory / "half.bin").write_bytes(b"partial")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("demo", {**PARTS, "seed": 1}, broken)  # never published: not journalled
    (entry,) = cache.builds()
    assert (entry["kind"], entry["key"], entry["label"], entry["pid"]) == (
        "demo", cache_key("demo", PARTS), "demo set", os.getpid())
    with open(cache.root / ".builds.jsonl", "a") as fh:
        fh.write("{half a line\n")
    with pytest.raises(CacheError, match=r"\.builds\.jsonl:2: not a JSON line"):
        cache.builds()


def test_manifest_lists_digests_sizes_key_parts_and_metadata(cache):
    art = cache.get_or_build("demo", PARTS, writer(b"\x00" * 1000))
    manifest = json.loads((art.path / MANIFEST).read_text())
    assert manifest["key"] == art.key and manifest["kind"] == "demo"
    assert manifest["key_parts"] == json.loads(canonical_json(PARTS))
    assert set(manifest["files"]) == {"model.bin", "sub/ids.json"}
    assert manifest["files"]["model.bin"]["size"] == 1000
    import hashlib

    assert manifest["files"]["model.bin"]["sha256"] == hashlib.sha256(b"\x00" * 1000).hexdigest()
    assert manifest["metadata"] == {"converter": {"optimizations": ["DEFAULT"]}}
    assert manifest["built_at"] and manifest["build_seconds"] >= 0
    assert art.files == {"model.bin": art.path / "model.bin", "sub/ids.json": art.path / "sub" / "ids.json"}
    assert art.size("model.bin") == 1000
    with pytest.raises(CacheError, match="no file 'missing.bin'"):
        art.file("missing.bin")


def test_progress_lines_name_the_artefact(tmp_path):
    lines = []
    cache = ArtifactCache(tmp_path, log=lines.append)
    cache.get_or_build("tflite-int8", PARTS, writer(), label="tflite-int8 for mini/tensorflow/resnet50")
    assert lines[0].startswith("building tflite-int8 for mini/tensorflow/resnet50 ...")
    assert lines[-1].startswith("built tflite-int8 for mini/tensorflow/resnet50")
    lines.clear()
    cache.get_or_build("tflite-int8", PARTS, writer())
    assert lines == []  # a hit prints nothing


def test_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert ArtifactCache().root == tmp_path / "elsewhere"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    assert ArtifactCache().root == REPO / ".cache" / "artifacts"


# -- failures leave nothing behind ---------------------------------------------------------
def test_failed_build_leaves_nothing_and_the_next_call_builds(cache):
    def broken(directory: Path):
        (directory / "half.bin").write_bytes(b"partial")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        cache.get_or_build("demo", PARTS, broken)
    kind_dir = cache.root / "demo"
    assert [p.name for p in kind_dir.iterdir() if not p.name.startswith(".locks")] == []
    assert cache.get_or_build("demo", PARTS, writer()).built


@pytest.mark.parametrize("result, message", [("not a dict", "returned str"), (None, "wrote no files")])
def test_builder_contract_is_enforced(cache, result, message):
    def build(directory: Path):
        if message == "returned str":
            (directory / "x").write_bytes(b"1")
        return result

    with pytest.raises(CacheError, match=message):
        cache.get_or_build("demo", PARTS, build)
    assert not cache.path_for("demo", cache_key("demo", PARTS)).exists()


def test_stale_temporary_directory_of_a_crashed_build_is_cleaned(cache):
    key = cache_key("demo", PARTS)
    stale = cache.root / "demo" / f".tmp-{key}-crashed"
    stale.mkdir(parents=True)
    (stale / "model.bin").write_bytes(b"half")
    cache.get_or_build("demo", PARTS, writer())
    assert not stale.exists()


def test_bad_kind_is_refused(cache):
    for kind in ("", "../up", "Upper", ".hidden", "a/b"):
        with pytest.raises(CacheError, match="artefact kind"):
            cache.get_or_build(kind, PARTS, writer())


# -- corruption is detected and rebuilt, never used -------------------------------------------
def _flip(path: Path, offset: int = 2) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "flipped byte": lambda a: _flip(a.path / "model.bin"),
    "truncated file": lambda a: (a.path / "model.bin").write_bytes(b"he"),
    "missing file": lambda a: (a.path / "sub" / "ids.json").unlink(),
    "extra file": lambda a: (a.path / "sneaked_in.bin").write_bytes(b"x"),
    "missing manifest": lambda a: (a.path / MANIFEST).unlink(),
    "garbled manifest": lambda a: (a.path / MANIFEST).write_text("{not json"),
    "manifest of another key": lambda a: (a.path / MANIFEST).write_text(
        (a.path / MANIFEST).read_text().replace(a.key, "0" * 64)),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_artefact_is_rebuilt_not_used(cache, corruption):
    first = cache.get_or_build("demo", PARTS, writer(b"hello"))
    CORRUPTIONS[corruption](first)
    with pytest.raises(CorruptArtifact):
        ArtifactCache.verify(first.path, first.key)
    assert cache.lookup("demo", PARTS) is None
    calls = []
    again = cache.get_or_build("demo", PARTS, writer(b"hello", calls=calls))
    assert again.built and len(calls) == 1
    assert (again.path / "model.bin").read_bytes() == b"hello"
    assert ArtifactCache.verify(again.path, again.key)["files"] == first.manifest["files"]
    assert not list((cache.root / "demo").glob(".trash-*"))


# -- concurrency: two processes, one build -----------------------------------------------------
_RACER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from harness.cache import ArtifactCache

    root, log, start_at = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

    def build(directory):
        with open(log, "a") as fh:
            fh.write("built\\n")
        time.sleep(1.0)  # long enough for the other process to arrive and wait
        (directory / "model.bin").write_bytes(b"x" * 4096)
        return {{}}

    while time.time() < start_at:
        time.sleep(0.005)
    art = ArtifactCache(root, log=lambda m: None).get_or_build("race", {{"k": 1}}, build)
    print(json.dumps({{"built": art.built, "path": str(art.path)}}))
""")


def test_two_processes_asking_for_the_same_key_build_it_once(tmp_path):
    import time

    script = tmp_path / "racer.py"
    script.write_text(_RACER.format(repo=str(REPO)))
    log = tmp_path / "builds.log"
    start_at = time.time() + 1.5
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(log), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert log.read_text().count("built") == 1
    assert sorted(r["built"] for r in results) == [False, True]
    journal = ArtifactCache(tmp_path / "cache").builds()
    assert [(e["kind"], e["label"]) for e in journal] == [("race", "race")]
    assert results[0]["path"] == results[1]["path"]
    assert Path(results[0]["path"], "model.bin").read_bytes() == b"x" * 4096


def test_artifact_is_a_plain_record(cache):
    art = cache.get_or_build("demo", PARTS, writer())
    assert isinstance(art, Artifact)
    assert art.key_parts == json.loads(canonical_json(PARTS))
    assert art.metadata["converter"] == {"optimizations": ["DEFAULT"]}


# --- source digests: a stage's code is part of its keys ----------------------------------------------
def _copy_stage(tmp_path: Path) -> Path:
    """A copy of the conversion stage's sources (convert, zoo, data/preprocessing.py) as a tree of its own."""
    import shutil

    root = tmp_path / "harness"
    for name in ("convert", "zoo"):
        shutil.copytree(REPO / "harness" / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").mkdir()
    shutil.copy(REPO / "harness" / "data" / "preprocessing.py", root / "data" / "preprocessing.py")
    return root


def test_source_digest_changes_with_one_byte_of_the_stage_and_not_with_its_location(tmp_path):
    from harness.cache import source_digest, source_files
    from harness.convert import CONVERTER_SOURCES, converter_source_digest

    root = _copy_stage(tmp_path)
    def digest() -> str:
        return source_digest(root / "convert", root / "zoo", root / "data" / "preprocessing.py", exclude=("train.py",))

    copied = digest()
    # The same files elsewhere: the same digest as the checkout's (names are relative to their common folder).
    assert copied == converter_source_digest() == source_digest(*CONVERTER_SOURCES, exclude=("train.py",))
    assert len(source_files(*CONVERTER_SOURCES, exclude=("train.py",))) > 10
    target = root / "convert" / "tflite.py"
    text = target.read_bytes()
    target.write_bytes(text.replace(b"def ", b"def  ", 1))  # one byte, in code nobody would version
    assert digest() != copied
    target.write_bytes(text)
    assert digest() == copied
    (root / "zoo" / "train.py").write_text("# the training script does not decide a converted file's bytes\n")
    assert digest() == copied
    (root / "convert" / "new_format.py").write_text("")  # a new converter module is new code
    assert digest() != copied


def test_source_digest_of_one_file_is_its_sha256_and_of_several_their_sha256sum_listing(tmp_path):
    import hashlib

    from harness.cache import file_sha256, source_digest

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    assert source_digest(a) == file_sha256(a)
    listing = f"{file_sha256(a)}  a.py\n{file_sha256(b)}  b.py\n"
    assert source_digest(tmp_path) == source_digest(b, a) == hashlib.sha256(listing.encode()).hexdigest()
    with pytest.raises(CacheError, match="no such source"):
        source_digest(tmp_path / "missing.py")


def test_stage_source_digests_are_stable_across_processes():
    from harness.attack.generate import generation_source_digest
    from harness.convert import converter_source_digest

    code = ("from harness.convert import converter_source_digest as c; "
            "from harness.attack.generate import generation_source_digest as g; print(c(), g())")
    outputs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split()
               for _ in range(2)]
    assert outputs[0] == outputs[1] == [converter_source_digest(), generation_source_digest()]

