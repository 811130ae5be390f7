"""The aarch64 runtime bundle: a folder that runs the runner on any arm64 Linux kernel.

What it holds (``bundle.lock.json`` pins every input by version and SHA-256):

* Debian bookworm's arm64 Python 3.11 with its glibc loader and the few shared
  libraries the runner's imports need, unpacked from the ``.deb`` files (no dpkg
  database, no distribution: nothing outside the folder is read);
* aarch64 manylinux wheels from PyPI: numpy, pillow, ai-edge-litert (the host's
  version) and, in the ``full`` variant, a CPU build of torch (2.9.1: the newest
  aarch64 torch wheel that is not a CUDA build; it reads the ``.ptl`` files the
  host's torch writes) and ExecuTorch's runtime (1.0.1: the aarch64 wheel built against
  torch 2.9; it runs the ``.pte`` files the host's ExecuTorch 1.5.1 writes, float and
  int8 XNNPACK, as ``tests/runtime/test_arm64_executorch.py`` checks; see also
  :mod:`harness.runtime.arm64`). Newer ExecuTorch
  aarch64 wheels (1.1 and later) link a libtorch that has ``c10::TensorImpl::decref_pyobject``,
  which torch 2.9.1 lacks, and the torch versions they need have only CUDA aarch64 wheels.

Layout (``B`` is the bundle folder)::

    B/bundle.json              what is inside: variant, versions, lock digest, sizes
    B/run.sh                   the launch line for a shell (a phone: ``sh B/run.sh runner.py ...``)
    B/lib/ld-linux-aarch64.so.1, B/lib/*.so*   the loader and libraries
    B/bin/python3.11
    B/lib/python3.11/          the standard library (PYTHONHOME=B)
    B/site-packages/           the wheels, unpacked (PYTHONPATH)

Every ``.py`` is precompiled with unchecked-hash ``.pyc`` files: ``adb push`` resets
file times, which would make timestamp-checked caches stale and slow every start.

The bundle is an artefact of :mod:`harness.cache` keyed by the lock entries of its
variant and this file's own source, so a changed pin or builder rebuilds it, a
corrupt file is found by its digest and rebuilt, and a warm run reuses it.
Downloads are kept by digest under ``<cache>/.downloads`` so a rebuild fetches nothing.

    python -m android_harness.bundle build [--variant full|litert]   # into the artefact cache
    python -m android_harness.bundle lock                            # maintainers: re-resolve the pins
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.cache import file_sha256, source_digest

HERE = Path(__file__).resolve().parent
LOCK_PATH = HERE / "bundle.lock.json"
KIND = "bundle-arm64"
PYTHON = "python3.11"
LOADER = "ld-linux-aarch64.so.1"

# Runtime families the runner knows, and which bundle variants carry them.
# ExecuTorch's Python runtime loads libtorch, so "executorch" needs "torch" beside it.
VARIANTS = {"full": ("litert", "torch", "executorch"), "litert": ("litert",)}

# --- what `lock` resolves (maintainers) -------------------------------------------------------
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
DEBIAN_SUITES = ((DEBIAN_MIRROR, "bookworm"), (DEBIAN_MIRROR, "bookworm-updates"),
                 (DEBIAN_SECURITY, "bookworm-security"))
# The Python interpreter and exactly the shared libraries its imports here need
# (ctypes: libffi; hashlib/ssl: libssl; zlib, bz2, lzma, expat; torch and LiteRT: libstdc++).
DEB_PACKAGES = ("libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libbz2-1.0",
                "liblzma5", "libssl3", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# Wheels per family ("common" goes in every variant). Pure-Python dependencies are listed
# only where an import at run time needs them.
WHEELS = {
    "common": ("numpy==2.4.6", "pillow==13.0.0"),
    "litert": ("ai-edge-litert==2.3.0",),
    "torch": ("torch==2.9.1", "typing-extensions==4.15.0", "filelock==3.20.0", "sympy==1.14.0",
              "mpmath==1.3.0", "networkx==3.5", "jinja2==3.1.6", "markupsafe==3.0.3", "fsspec==2025.10.0"),
    # Built against torch 2.9 (its metadata: torch>=2.9,<2.10); the runner imports only its
    # pybinding, so none of its export-side dependencies is needed.
    "executorch": ("executorch==1.0.1",),
}
WHEEL_PLATFORMS = ("manylinux2014_aarch64",) + tuple(f"manylinux_2_{n}_aarch64" for n in range(17, 40))

# --- trimming: what no import of the runner reaches -------------------------------------------
TRIM = (
    "lib/python3.11/test", "lib/python3.11/idlelib", "lib/python3.11/tkinter", "lib/python3.11/turtledemo",
    "lib/python3.11/ensurepip", "lib/python3.11/lib2to3", "lib/python3.11/pydoc_data",
    "lib/python3.11/config-3.11-aarch64-linux-gnu", "lib/gconv",
    "site-packages/torch/include", "site-packages/torch/share", "site-packages/torchgen/packaged",
    "site-packages/torch/bin/test_*", "site-packages/ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "site-packages/numpy/_core/tests", "site-packages/numpy/tests", "site-packages/numpy/*/tests",
    "site-packages/sympy/*/tests", "site-packages/networkx/*/tests", "site-packages/networkx/*/*/tests",
    # ExecuTorch: the runner needs only executorch/extension/pybindings (the runtime, with
    # XNNPACK and the portable and optimized kernels, is one shared library) and version.py.
    *(f"site-packages/executorch/{d}" for d in ("backends", "codegen", "data", "devtools", "examples", "exir",
                                                 "export", "include", "kernels", "runtime", "schema", "share",
                                                 "util")),
    *(f"site-packages/executorch/extension/{d}" for d in ("audio", "export_util", "flat_tensor", "gguf_util", "llm",
                                                           "module", "pytree", "training", "wasm")),
    "site-packages/executorch/extension/pybindings/test",
)


class BundleError(RuntimeError):
    """A lock file that is malformed, a download whose digest differs, a build that failed."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its folder and what ``bundle.json`` says of it."""

    root: Path
    info: dict
    key: str

    @property
    def variant(self) -> str:
        return self.info["variant"]

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.info["families"])

    @property
    def versions(self) -> dict:
        return self.info["versions"]

    @property
    def digest(self) -> str:
        """The artefact key: the same bits everywhere the same key is built."""
        return self.key

    def python_argv(self, root: str | None = None) -> list[str]:
        """The interpreter's command line, for a bundle at ``root`` (default: where it is here)."""
        b = root or str(self.root)
        return [f"{b}/lib/{LOADER}", "--library-path", f"{b}/lib", f"{b}/bin/{PYTHON}"]

    def environment(self, root: str | None = None, tmp: str | None = None, threads: int = 1) -> dict:
        return launch_environment(root or str(self.root), tmp or tempfile.gettempdir(), threads)


def launch_environment(root: str, tmp: str, threads: int = 1) -> dict:
    """The variables the bundle's Python needs, the same on a phone and under qemu.

    ``GLIBC_TUNABLES=glibc.pthread.rseq=0``: restartable sequences are not emulated by
    qemu-user and some phone kernels lack them; glibc then falls back.
    """
    return {
        "PYTHONHOME": root, "PYTHONPATH": f"{root}/site-packages", "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C", "HOME": tmp, "TMPDIR": tmp,
        "GLIBC_TUNABLES": "glibc.pthread.rseq=0", "OMP_NUM_THREADS": str(threads),
    }


RUN_SH = """# Launch the bundle's Python: sh run.sh SCRIPT [ARGS...] (Android has no /bin/sh shebang).
# Where aarch64 code cannot run natively (the virtual phone), $QEMU names a user-mode qemu.
B=$(cd "$(dirname "$0")" && pwd)
T=${{TMPDIR:-/data/local/tmp}}
export {exports}
exec ${{QEMU:+$QEMU -cpu ${{QEMU_CPU:-cortex-a76}}}} "$B/lib/{loader}" --library-path "$B/lib" "$B/bin/{python}" "$@"
"""


def _run_sh() -> str:
    env = launch_environment("$B", "$T", 1)
    env["OMP_NUM_THREADS"] = "${OMP_NUM_THREADS:-1}"
    exports = " ".join(f'{k}="{v}"' for k, v in env.items())
    return RUN_SH.format(exports=exports, loader=LOADER, python=PYTHON)


# --- the lock file ---------------------------------------------------------------------------
def load_lock(path: Path = LOCK_PATH) -> dict:
    try:
        lock = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle lock file not found (python -m android_harness.bundle lock)") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(lock, dict) or not isinstance(lock.get("debian"), list) or not isinstance(lock.get("wheels"), dict):
        raise BundleError(f"{path}: expected {{'debian': [...], 'wheels': {{family: [...]}}}}")
    for entry in lock["debian"] + [w for ws in lock["wheels"].values() for w in ws]:
        for field in ("name", "version", "url", "sha256", "size"):
            if field not in entry:
                raise BundleError(f"{path}: entry {entry.get('name', entry)!r} lacks {field!r}")
        if len(str(entry["sha256"])) != 64:
            raise BundleError(f"{path}: {entry['name']}: sha256 must be 64 hex digits")
    return lock


def variant_entries(lock: dict, variant: str) -> dict:
    if variant not in VARIANTS:
        raise BundleError(f"unknown bundle variant {variant!r}; expected one of {sorted(VARIANTS)}")
    families = ("common",) + VARIANTS[variant]
    missing = [f for f in families if f not in lock["wheels"]]
    if missing:
        raise BundleError(f"{LOCK_PATH}: no wheels locked for {missing}")
    return {"debian": lock["debian"], "wheels": {f: lock["wheels"][f] for f in families}}


def key_parts(variant: str, lock: dict | None = None) -> dict:
    lock = lock if lock is not None else load_lock()
    inputs = variant_entries(lock, variant)  # an unknown variant is a BundleError naming the valid ones
    return {
        "stage": "bundle", "variant": variant, "families": list(VARIANTS[variant]),
        "inputs": inputs,
        # The builder's own code: a change in layout or trimming is a new bundle.
        "builder_sha256": source_digest(Path(__file__)),  # one file: its SHA-256, as before
    }


# --- building --------------------------------------------------------------------------------
def fetch(entry: dict, downloads: Path, log=print) -> Path:
    """The locked file, from the download cache or its registry, verified by SHA-256."""
    downloads.mkdir(parents=True, exist_ok=True)
    name = entry["url"].rsplit("/", 1)[-1]
    target = downloads / f"{entry['sha256'][:16]}-{name}"
    if target.is_file() and file_sha256(target) == entry["sha256"]:
        return target
    log(f"bundle: downloading {name} ({entry['size'] / 2**20:.1f} MiB)")
    fd, tmp = tempfile.mkstemp(dir=downloads, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry["url"], timeout=120) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        got = file_sha256(Path(tmp))
        if got != entry["sha256"]:
            raise BundleError(f"{entry['url']}: SHA-256 {got} differs from the lock's {entry['sha256']} "
                              f"({LOCK_PATH}); the registry served other bytes than were pinned")
        os.replace(tmp, target)
    except OSError as exc:
        raise BundleError(f"{entry['url']}: download failed ({exc}); the bundle needs Debian's and PyPI's "
                          "servers once, then builds from the download cache") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _extract_deb(deb: Path, into: Path) -> None:
    """``dpkg-deb -x`` where it exists; otherwise read the ar archive with Python (any OS)."""
    if shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True, capture_output=True)
        return
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise BundleError(f"{deb}: not a Debian package (no ar header)")
    offset = 8
    while offset < len(data):
        header = data[offset:offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        body = data[offset + 60:offset + 60 + size]
        if name.startswith("data.tar"):
            import io

            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                tar.extractall(into, filter="tar")
            return
        offset += 60 + size + (size % 2)
    raise BundleError(f"{deb}: no data.tar member")


def _assemble(staging: Path, out: Path) -> None:
    """Debian's tree -> the bundle's flat layout (loader and libraries in lib/, stdlib beside them)."""
    lib = out / "lib"
    lib.mkdir(parents=True)
    for source in (staging / "lib/aarch64-linux-gnu", staging / "usr/lib/aarch64-linux-gnu"):
        if not source.is_dir():
            continue
        for item in source.iterdir():
            if item.is_dir():
                if item.name == "gconv":
                    continue
                shutil.copytree(item, lib / item.name, symlinks=False, dirs_exist_ok=True)
            else:
                shutil.copy2(item.resolve() if item.is_symlink() and item.resolve().exists() else item,
                             lib / item.name, follow_symlinks=True)
    loader = lib / LOADER
    if not loader.is_file():
        raise BundleError(f"the Debian packages gave no {LOADER}; is libc6 in the lock?")
    (out / "bin").mkdir()
    shutil.copy2(staging / "usr/bin" / PYTHON, out / "bin" / PYTHON)
    shutil.copytree(staging / "usr/lib" / PYTHON, lib / PYTHON, symlinks=False)


def _install_wheel(wheel: Path, site: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            target = site / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)


def _trim(out: Path) -> int:
    removed = 0
    for pattern in TRIM:
        for path in out.glob(pattern):
            removed += sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # Static archives and C headers are for building against, not running.
    for path in list(out.rglob("*.a")) + list(out.rglob("*.h")):
        removed += path.stat().st_size
        path.unlink()
    return removed


def _precompile(out: Path) -> None:
    """Unchecked-hash ``.pyc`` everywhere: valid whatever the file times (``adb push`` resets them).

    The host's interpreter writes them when it is a 3.11 (same bytecode); otherwise the
    bundle's own Python does it under emulation at first start."""
    if sys.version_info[:2] != (3, 11):
        return
    for folder in (out / "lib" / PYTHON, out / "site-packages"):
        compileall.compile_dir(str(folder), quiet=2, workers=0,
                               invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
                               ddir=None)


def folder_size(root: Path) -> tuple[int, int]:
    files = [p for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def build_into(out: Path, variant: str, downloads: Path, log=print, lock: dict | None = None) -> dict:
    """Build the ``variant`` bundle into the empty folder ``out``; returns its ``bundle.json``."""
    lock = lock if lock is not None else load_lock()
    entries = variant_entries(lock, variant)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bundle-debs-") as tmp:
        staging = Path(tmp)
        for entry in entries["debian"]:
            _extract_deb(fetch(entry, downloads, log), staging)
        _assemble(staging, out)
    site = out / "site-packages"
    site.mkdir()
    versions = {"python": _deb_version(entries, "python3.11-minimal"), "glibc": _deb_version(entries, "libc6")}
    for family, wheels in entries["wheels"].items():
        for entry in wheels:
            _install_wheel(fetch(entry, downloads, log), site)
            versions[entry["name"]] = entry["version"]
    trimmed = _trim(out)
    _precompile(out)
    (out / "run.sh").write_text(_run_sh())
    size, count = folder_size(out)
    info = {
        "variant": variant, "families": list(VARIANTS[variant]), "versions": versions,
        "runtimes": {"litert": versions.get("ai-edge-litert"), "torch": versions.get("torch"),
                     "executorch": versions.get("executorch"),
                     "numpy": versions.get("numpy"), "python": versions["python"]},
        "lock_sha256": hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest(),
        "unpacked_bytes": size, "files": count, "trimmed_bytes": trimmed,
        "build_seconds": round(time.perf_counter() - start, 1),
        "launch": "sh run.sh SCRIPT ARGS... (or: lib/ld-linux-aarch64.so.1 --library-path lib bin/python3.11)",
    }
    (out / "bundle.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def _deb_version(entries: dict, name: str) -> str:
    for entry in entries["debian"]:
        if entry["name"] == name:
            return entry["version"]
    raise BundleError(f"{LOCK_PATH}: no {name} in the Debian packages")


def get_bundle(variant: str = "full", cache=None, log=None, downloads: Path | None = None) -> Bundle:
    """The bundle from the artefact cache, built (and verified) on first use.

    ``downloads`` keeps the fetched files by digest (default ``<cache>/.downloads``)."""
    from harness.cache import ArtifactCache

    cache = cache if cache is not None else ArtifactCache()
    downloads = Path(downloads) if downloads is not None else cache.root / ".downloads"

    def build(directory: Path) -> dict:
        return build_into(directory, variant, downloads, log or cache.log)

    artifact = cache.get_or_build(KIND, key_parts(variant), build, label=f"aarch64 runtime bundle ({variant})")
    info = json.loads(artifact.file("bundle.json").read_text())
    return Bundle(artifact.path, info, artifact.key)


def packed(bundle: Bundle, cache=None) -> Path:
    """The bundle as a ``.tar.gz`` in the artefact cache (packing 600 MiB takes most of a minute)."""
    from harness.cache import ArtifactCache

    cache = cache if cache is not None else ArtifactCache()

    def build(directory: Path) -> dict:
        return {"bytes": pack(bundle, directory / "bundle.tar.gz"), "bundle": bundle.key}

    artifact = cache.get_or_build(KIND + "-tar", {"stage": "bundle-tar", "bundle": bundle.key}, build,
                                  label=f"packed bundle {bundle.key[:12]}")
    return artifact.file("bundle.tar.gz")


def pack(bundle: Bundle, target: Path) -> int:
    """The bundle as one ``.tar.gz`` (what a phone receives); returns its size in bytes."""
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        tar.add(bundle.root, arcname=f"bundle-{bundle.key[:12]}")
    return Path(target).stat().st_size


# --- lock (maintainers) ------------------------------------------------------------------------
def _private_apt(workdir: Path) -> dict:
    """An APT setup for arm64 in ``workdir`` that leaves the host's own packages alone."""
    (workdir / "lists/partial").mkdir(parents=True, exist_ok=True)
    (workdir / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    (workdir / "status").touch()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (workdir / "sources.list").write_text("".join(
        f"deb [arch=arm64 signed-by={keyring}] {mirror} {suite} main\n" for mirror, suite in DEBIAN_SUITES))
    (workdir / "apt.conf").write_text("\n".join([
        'APT::Architecture "arm64";', 'APT::Architectures { "arm64"; };',
        f'Dir::State "{workdir}";', f'Dir::State::Lists "{workdir}/lists";', f'Dir::State::status "{workdir}/status";',
        f'Dir::Cache "{workdir}/cache";', f'Dir::Etc::SourceList "{workdir}/sources.list";',
        f'Dir::Etc::SourceParts "{workdir}/none";', f'Dir::Etc::Preferences "{workdir}/none";',
        f'Dir::Etc::PreferencesParts "{workdir}/none";', ""]))
    env = {**os.environ, "APT_CONFIG": str(workdir / "apt.conf")}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    return env


def _deb_entry(name: str, env: dict) -> dict:
    policy = subprocess.run(["apt-cache", "policy", name], env=env, check=True, capture_output=True, text=True).stdout
    candidate = next(line.split(":", 1)[1].strip() for line in policy.splitlines() if "Candidate:" in line)
    shown = subprocess.run(["apt-cache", "show", f"{name}={candidate}"], env=env, check=True,
                           capture_output=True, text=True).stdout.split("\n\n")[0]
    fields = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line and not line.startswith(" "))
    base = DEBIAN_SECURITY if fields["Filename"].startswith("pool/updates/") else DEBIAN_MIRROR
    return {"name": name, "version": candidate, "url": f"{base}/{fields['Filename']}",
            "sha256": fields["SHA256"], "size": int(fields["Size"])}


def _wheel_entries(requirements) -> list[dict]:
    """URL and SHA-256 of each pinned aarch64 wheel, as pip resolves them on PyPI (no download)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--no-deps",
                "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                "--abi", "abi3", "--abi", "none", "--target", f"{tmp}/t", "--index-url", "https://pypi.org/simple",
                "--quiet", "--report", str(report)]
        for platform in WHEEL_PLATFORMS + ("any",):
            argv += ["--platform", platform]
        done = subprocess.run(argv + list(requirements), capture_output=True, text=True)
        if done.returncode != 0:
            raise BundleError(f"pip could not resolve {list(requirements)} for aarch64: {done.stderr.strip()[-500:]}")
        entries = []
        for item in json.loads(report.read_text())["install"]:
            url = item["download_info"]["url"]
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as response:
                size = int(response.headers["Content-Length"])
            entries.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"], "url": url,
                            "sha256": item["download_info"]["archive_info"]["hashes"]["sha256"], "size": size})
    return entries


def lock() -> dict:
    """Re-resolve every pin (Debian: the suites' newest arm64 version; wheels: as listed)."""
    with tempfile.TemporaryDirectory(prefix="apt-arm64-") as tmp:
        env = _private_apt(Path(tmp))
        debian = [_deb_entry(name, env) for name in DEB_PACKAGES]
    wheels = {family: _wheel_entries(reqs) for family, reqs in WHEELS.items()}
    document = {"format": 1, "comment": "written by `python -m android_harness.bundle lock`; do not edit by hand",
                "debian": debian, "wheels": wheels}
    LOCK_PATH.write_text(json.dumps(document, indent=1) + "\n")
    return document


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m android_harness.bundle", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the bundle into the artefact cache (a hit is verified and reused)")
    b.add_argument("--variant", default="full", choices=sorted(VARIANTS))
    b.add_argument("--cache-dir", default=None)
    sub.add_parser("lock", help="re-resolve the pins into bundle.lock.json (needs apt-get and pip)")
    args = parser.parse_args(argv)
    from harness.cache import ArtifactCache

    if args.command == "lock":
        doc = lock()
        print(f"wrote {LOCK_PATH}: {len(doc['debian'])} Debian packages, "
              f"{sum(len(v) for v in doc['wheels'].values())} wheels")
        return 0
    cache = ArtifactCache(args.cache_dir) if args.cache_dir else ArtifactCache()
    start = time.perf_counter()
    bundle = get_bundle(args.variant, cache)
    print(json.dumps({"path": str(bundle.root), "key": bundle.key, "seconds": round(time.perf_counter() - start, 1),
                      **bundle.info}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
