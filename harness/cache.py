"""A content-addressed artefact cache shared by every expensive stage.

An artefact (a converted mobile model, a calibration set, an adversarial PNG set...)
is a directory ``<root>/<kind>/<key>/`` holding its files and a ``manifest.json``:

* ``key`` is the SHA-256 of the canonical JSON of the artefact's kind and *key parts*
  (everything that changes the bytes: weights digest, library versions, options,
  sample ids, seed, the digest of the stage's own source code (:func:`source_digest`)...),
  so equal inputs name the same directory on every machine;
* the manifest lists the key parts, the SHA-256 and size of every file, the builder's
  metadata (e.g. converter options) and when and how long the build took.

Writes are atomic: the builder fills a temporary directory in the same ``<kind>``
folder, the manifest is written last, and one ``rename`` publishes the whole. A
``filelock`` per key makes concurrent requests for the same artefact (pytest-xdist
workers, parallel jobs) build it once; the others wait and read it. Every read checks
the manifest's digests; an artefact that fails (corrupt, truncated, partial, edited)
is removed and rebuilt, never used. A hit does no building.

Every published build also appends one line to ``<root>/.builds.jsonl`` (kind, key,
label, process, host, seconds): the audit trail that shows, after a ``pytest -n 2`` run,
that no artefact was built twice (:func:`builds`).

Root: ``$HARNESS_CACHE_DIR`` or ``<repo>/.cache/artifacts``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping

import numpy as np
from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "HARNESS_CACHE_DIR"
MANIFEST = "manifest.json"
JOURNAL = ".builds.jsonl"
FORMAT = 1
_KIND_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class CacheError(RuntimeError):
    """A key that cannot be serialised, a builder that misbehaved, or an unusable cache root."""


class CorruptArtifact(CacheError):
    """An artefact on disk does not match its manifest (the message says which file and how)."""


def default_root() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else REPO_ROOT / ".cache" / "artifacts"


def _plain(value: Any, where: str = "key") -> Any:
    """Key parts -> JSON-able plain data, refusing anything whose text is ambiguous."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise CacheError(f"{where}: non-finite float {value!r} cannot be part of a cache key")
        return float(value)
    if isinstance(value, np.ndarray):
        return [_plain(v, where) for v in value.tolist()]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CacheError(f"{where}: mapping keys must be strings, found {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CacheError(f"{where}: {type(value).__name__} {value!r} cannot be part of a cache key")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII: the same text for the same content."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def cache_key(kind: str, key_parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"kind": kind, "parts": key_parts}).encode("ascii")).hexdigest()


def atomic_write(path: Path, data: str | bytes | Callable[[Any], Any]) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then one rename.

    ``data`` is text, bytes, or a function that writes into the open binary file.
    A failure leaves neither the temporary file nor a partial ``path`` behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(*paths: str | os.PathLike, exclude: tuple[str, ...] = ()) -> list[Path]:
    """The files named, and each named directory's ``*.py`` files (not recursive), sorted;
    files whose name is in ``exclude`` are left out. Repository-relative names are taken from
    the repository root."""
    files = set()
    for given in paths:
        path = Path(given)
        path = path if path.is_absolute() else REPO_ROOT / path
        if path.is_dir():
            files.update(p for p in path.glob("*.py") if p.is_file())
        elif path.is_file():
            files.add(path)
        else:
            raise CacheError(f"{path}: no such source file or directory")
    return sorted(f.resolve() for f in files if f.name not in exclude)


def source_digest(*paths: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str:
    """A stage's code as part of its cache keys: edit the code, get new keys (no version to bump).

    ``paths`` are files or directories (their ``*.py`` files, see :func:`source_files`). One
    file: its SHA-256, what ``sha256sum FILE`` prints. Several: the SHA-256 of their
    ``sha256sum`` listing (``<sha256>  <path>\n`` per file, paths relative to the files'
    common folder, sorted), so the digest does not depend on where the checkout lives and can be
    reproduced with ``cd harness && sha256sum convert/*.py ... | sha256sum``. Not cached: callers
    that key many artefacts compute it once per process (``functools.cache``).
    """
    files = source_files(*paths, exclude=exclude)
    if not files:
        raise CacheError(f"no source files in {[str(p) for p in paths]}")
    if len(files) == 1:
        return file_sha256(files[0])
    base = Path(os.path.commonpath(files))
    listing = "".join(f"{file_sha256(f)}  {f.relative_to(base).as_posix()}\n" for f in files)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def _list_files(directory: Path) -> dict[str, Path]:
    """Every regular file under ``directory`` except the manifest, by POSIX relative path."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise CacheError(f"{path}: symbolic links are not allowed in an artefact")
        if path.is_file():
            rel = path.relative_to(directory).as_posix()
            if rel != MANIFEST:
                files[rel] = path
    return files


@dataclass(frozen=True)
class Artifact:
    """A verified artefact directory. ``built`` is True when this call built it."""

    kind: str
    key: str
    path: Path
    manifest: dict = field(repr=False)
    built: bool

    @property
    def metadata(self) -> dict:
        return self.manifest.get("metadata", {})

    @property
    def key_parts(self) -> dict:
        return self.manifest["key_parts"]

    @property
    def files(self) -> dict[str, Path]:
        return {rel: self.path / rel for rel in self.manifest["files"]}

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise CacheError(f"{self.path}: artefact has no file {name!r} (has {sorted(self.manifest['files'])})")
        return self.path / name

    def size(self, name: str) -> int:
        return int(self.manifest["files"][name]["size"])


class ArtifactCache:
    def __init__(self, root: Path | str | None = None, log: Callable[[str], None] | None = None,
                 lock_timeout: float = 3600.0):
        self.root = Path(root) if root is not None else default_root()
        self.log = log if log is not None else _stderr
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ArtifactCache({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------
    def path_for(self, kind: str, key: str) -> Path:
        _check_kind(kind)
        return self.root / kind / key

    def _lock(self, kind: str, key: str) -> FileLock:
        locks = self.root / kind / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{key}.lock"), timeout=self.lock_timeout)

    # -- reading -----------------------------------------------------------------------
    @staticmethod
    def verify(path: Path, key: str | None = None) -> dict:
        """The manifest of a complete, intact artefact; CorruptArtifact otherwise."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise CorruptArtifact(f"{path}: no {MANIFEST} (partial or foreign directory)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"{manifest_path}: unreadable manifest ({exc})") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise CorruptArtifact(f"{manifest_path}: manifest lacks its file list")
        if key is not None and manifest.get("key") != key:
            raise CorruptArtifact(f"{manifest_path}: manifest key {manifest.get('key')!r} is not the directory's {key}")
        if key is not None and cache_key(manifest.get("kind", ""), manifest.get("key_parts", {})) != key:
            raise CorruptArtifact(f"{manifest_path}: key parts do not hash to {key}")
        listed = manifest["files"]
        present = _list_files(path)
        extra = sorted(set(present) - set(listed))
        if extra:
            raise CorruptArtifact(f"{path}: files not in the manifest: {extra}")
        for rel, entry in listed.items():
            file = path / rel
            if not file.is_file():
                raise CorruptArtifact(f"{file}: listed in the manifest but missing")
            size = file.stat().st_size
            if size != entry["size"]:
                raise CorruptArtifact(f"{file}: {size} bytes, manifest says {entry['size']}")
            digest = file_sha256(file)
            if digest != entry["sha256"]:
                raise CorruptArtifact(f"{file}: SHA-256 {digest[:12]}... differs from the manifest's {entry['sha256'][:12]}...")
        return manifest

    def lookup(self, kind: str, key_parts: Mapping[str, Any]) -> Artifact | None:
        """The intact artefact for these key parts, or None (a corrupt one counts as absent)."""
        key = cache_key(kind, key_parts)
        path = self.path_for(kind, key)
        if not path.exists():
            return None
        try:
            return Artifact(kind, key, path, self.verify(path, key), built=False)
        except CorruptArtifact:
            return None

    # -- building ----------------------------------------------------------------------
    def get_or_build(self, kind: str, key_parts: Mapping[str, Any],
                     build: Callable[[Path], Mapping[str, Any] | None], label: str | None = None) -> Artifact:
        """The artefact for ``key_parts``, built by ``build(tmp_dir) -> metadata`` if needed.

        ``build`` writes its files into the directory it is given and returns JSON-able
        metadata for the manifest (or None). ``label`` names the artefact in progress lines.
        """
        key = cache_key(kind, key_parts)
        path = self.path_for(kind, key)
        label = label or kind
        if path.exists():  # fast path: a published artefact never changes under us
            try:
                return Artifact(kind, key, path, self.verify(path, key), built=False)
            except CorruptArtifact:
                pass  # handled under the lock below
        with self._lock(kind, key):
            if path.exists():
                try:
                    return Artifact(kind, key, path, self.verify(path, key), built=False)
                except CorruptArtifact as exc:
                    self.log(f"cache: discarding corrupt {label} ({exc}); rebuilding")
                    _remove(path)
            self._clean_stale(kind, key)
            return self._build(kind, key, dict(key_parts), build, label)

    def _build(self, kind: str, key: str, key_parts: dict, build, label: str) -> Artifact:
        final = self.path_for(kind, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
        self.log(f"building {label} ... ({kind}/{key[:12]})")
        start = time.perf_counter()
        try:
            metadata = build(tmp)
            if metadata is None:
                metadata = {}
            if not isinstance(metadata, Mapping):
                raise CacheError(f"builder for {label} returned {type(metadata).__name__}, expected a dict or None")
            seconds = time.perf_counter() - start
            files = {rel: {"sha256": file_sha256(p), "size": p.stat().st_size}
                     for rel, p in _list_files(tmp).items()}
            if not files:
                raise CacheError(f"builder for {label} wrote no files into {tmp}")
            manifest = {
                "format": FORMAT,
                "kind": kind,
                "key": key,
                "key_parts": _plain(key_parts),
                "files": files,
                "metadata": _plain(metadata, "metadata"),
                "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "build_seconds": round(seconds, 3),
                "python": sys.version.split()[0],
            }
            _write_json(tmp / MANIFEST, manifest)
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        self._journal({"kind": kind, "key": key, "label": label, "pid": os.getpid(), "host": os.uname().nodename,
                       "seconds": round(seconds, 3), "built_at": manifest["built_at"]})
        self.log(f"built {label} in {seconds:.1f} s -> {final}")
        return Artifact(kind, key, final, manifest, built=True)

    def _journal(self, entry: dict) -> None:
        # One write of one line with O_APPEND: lines from concurrent processes never interleave.
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.root / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def builds(self) -> list[dict]:
        """Every build this cache has published, oldest first (its journal)."""
        path = self.root / JOURNAL
        if not path.is_file():
            return []
        entries = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CacheError(f"{path}:{number}: not a JSON line ({exc})") from exc
        return entries

    def _clean_stale(self, kind: str, key: str) -> None:
        """Temporary directories left for this key by a crashed build (we hold its lock)."""
        for stale in (self.root / kind).glob(f".tmp-{key}-*"):
            _remove(stale)

    def remove(self, kind: str, key_parts: Mapping[str, Any]) -> bool:
        key = cache_key(kind, key_parts)
        path = self.path_for(kind, key)
        with self._lock(kind, key):
            if path.exists():
                _remove(path)
                return True
        return False


def _check_kind(kind: str) -> None:
    if not kind or kind.startswith(".") or not set(kind) <= _KIND_CHARS:
        raise CacheError(f"artefact kind {kind!r} must be lower-case letters, digits, '-', '_' or '.'")


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _remove(path: Path) -> None:
    """Make a directory vanish at once (rename), then delete it."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.parent / f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
