"""The pytest layer's logic, kept out of conftest.py so it can be read and tested alone.

The root ``conftest.py`` only wires these functions to pytest's hooks: options are
validated into :class:`RunOptions` (bad values are usage errors, exit code 4), the
matrix is parametrized with readable ids and markers, each case writes its record
into ``reports/<run>/records/``, and the controller process writes the report (and,
with ``--write-thresholds``, the threshold file) when the session ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.attack.profiles import ProfileError, load_profile, load_profiles
from harness.cache import ArtifactCache, atomic_write
from harness.data import sources
from harness.data.dataset import DataError
from harness.metrics import gates as gating
from harness.study import HOST_PLATFORMS, PLATFORMS, RUNNER_PLATFORMS, Configuration, Study, matrix
from harness.zoo import registry
from harness.zoo.registry import ZOOS  # noqa: F401  (conftest offers these as --zoo choices)

# The profile a zoo runs when --profile is not given: the mini zoo's is sized for it;
# the imagenet zoo replicates the paper.
ZOO_PROFILES = {"mini": "default", "imagenet": "paper"}

DEVICE_SKIP = ("no Android phone attached over ADB: enable USB debugging on the phone, plug it in, "
               "accept the host key, and check that `adb devices` lists it")


def imagenet_dir_misuse(zoo: str, imagenet_dir) -> str | None:
    """What is wrong with naming an ImageNet folder for this zoo, or None. The option is read by
    the imagenet zoo only; silently ignoring it would let a user believe the mini run used it.
    ($IMAGENET_DIR is a standing setting, not a request for this run, so it is not checked.)"""
    if imagenet_dir and zoo != "imagenet":
        return (f"--imagenet-dir {imagenet_dir} only applies to --zoo imagenet (this run uses --zoo {zoo}, "
                "which reads its own committed images): add --zoo imagenet or drop --imagenet-dir")
    return None


@dataclass
class RunOptions:
    zoo: str
    profile_name: str
    samples: int | None
    cache_dir: Path | None
    report_dir: Path
    run_id: str
    thresholds_path: Path
    write_thresholds: bool
    margin: float
    threads: int
    gates: dict | None  # None: no threshold file yet (cases then fail saying how to write one)
    imagenet_dir: Path | None = None
    # The image source, when validating the options already opened it (indexing an ImageNet
    # folder reads 50,000 directory entries and a label file: done once, not twice).
    source: sources.StudySource | None = field(default=None, compare=False, repr=False)

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run_id

    @property
    def records_dir(self) -> Path:
        return self.run_dir / "records"

    @property
    def profile(self):
        return load_profile(self.profile_name)

    @classmethod
    def from_pytest(cls, config) -> "RunOptions":
        opt = config.option
        try:
            profiles = load_profiles()
        except ProfileError as exc:
            raise pytest.UsageError(str(exc)) from None
        if opt.profile is None:
            opt.profile = ZOO_PROFILES[opt.zoo]
        misplaced = imagenet_dir_misuse(opt.zoo, opt.imagenet_dir)
        if misplaced:
            raise pytest.UsageError(misplaced)
        if opt.profile not in profiles:
            raise pytest.UsageError(f"--profile {opt.profile!r} is not in profiles.toml; valid: {sorted(profiles)}")
        if opt.samples is not None and opt.samples <= 0:
            raise pytest.UsageError(f"--samples must be a positive integer, got {opt.samples}")
        if not 0.0 <= opt.threshold_margin <= 1.0:
            raise pytest.UsageError(f"--threshold-margin must be in [0, 1], got {opt.threshold_margin}")
        if opt.threads < 1:
            raise pytest.UsageError(f"--threads must be at least 1, got {opt.threads}")
        source = None
        if opt.zoo == "imagenet" and (opt.imagenet_dir or os.environ.get(sources.IMAGENET_DIR_ENV)):
            try:  # a folder that is named but unusable is the user's typo: say so now, not in 90 cases
                source = sources.source_for(opt.zoo, opt.imagenet_dir)
            except DataError as exc:
                raise pytest.UsageError(str(exc)) from None
        path = Path(opt.thresholds) if opt.thresholds else gating.default_path(opt.zoo, opt.profile)
        gates = None
        if not opt.write_thresholds and path.is_file():
            try:
                gates = gating.load_thresholds(path, [c.id for c in matrix()], opt.zoo, opt.profile)
            except gating.ThresholdError as exc:
                raise pytest.UsageError(str(exc)) from None
        elif opt.thresholds and not opt.write_thresholds:
            raise pytest.UsageError(f"--thresholds {path}: file not found")
        return cls(opt.zoo, opt.profile, opt.samples, Path(opt.cache_dir) if opt.cache_dir else None,
                   Path(opt.report_dir), os.environ.get("HARNESS_RUN_ID", "manual"), path,
                   opt.write_thresholds, opt.threshold_margin, opt.threads, gates,
                   Path(opt.imagenet_dir) if opt.imagenet_dir else None, source)

    def make_study(self) -> Study:
        """The run's study; every case skips, saying what to provide, when the zoo's
        weights or images are not on this machine (the imagenet zoo never downloads)."""
        try:
            source = self.source or sources.source_for(self.zoo, self.imagenet_dir)
        except sources.DataUnavailable as exc:
            pytest.skip(str(exc))
        missing = registry.missing_weights(self.zoo)
        if missing:
            pytest.skip(f"{len(missing)} of the {self.zoo} zoo's weight files are not on this machine "
                        f"(nothing is downloaded at test time): {' | '.join(missing)}")
        cache = ArtifactCache(self.cache_dir) if self.cache_dir else ArtifactCache()
        return Study(self.zoo, self.profile, cache, self.samples, self.threads, log=_progress, source=source)

    def gate_for(self, config: Configuration) -> dict:
        if self.write_thresholds:
            return {}
        if self.gates is None:
            pytest.fail(f"no threshold file at {self.thresholds_path}: write one from a trusted run with "
                        f"`pytest -m pc --write-thresholds` (zoo {self.zoo}, profile {self.profile_name})",
                        pytrace=False)
        if config.id not in self.gates:
            pytest.fail(f"{self.thresholds_path} has no gates for {config.id}; every configuration needs them "
                        "(rewrite the file with --write-thresholds)", pytrace=False)
        return self.gates[config.id]


# Environment variables that size the frameworks' thread pools; read when each framework starts.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def share_cores_among_workers(workers: int) -> int:
    """Give each pytest-xdist worker its share of the cores (before it imports a framework).

    Left alone, every worker's TensorFlow and PyTorch size their pools to all cores, and
    n workers oversubscribe them n times over. Variables the user set are kept.
    """
    share = max(1, (os.cpu_count() or 1) // max(1, workers))
    for name in THREAD_ENV:
        os.environ.setdefault(name, str(share))
    return share


def _progress(message: str) -> None:
    print(message, flush=True)


def parametrize_matrix(metafunc) -> None:
    zoo = metafunc.config.option.zoo
    params = []
    for config in matrix():
        marks = [pytest.mark.pc if config.platform in HOST_PLATFORMS else pytest.mark.device,
                 pytest.mark.xdist_group(f"{config.framework}-{config.model}")]
        if zoo == "imagenet":
            marks += [pytest.mark.imagenet, pytest.mark.slow]
        params.append(pytest.param(config, id=config.id, marks=marks))
    metafunc.parametrize("configuration", params)


SLOW_SKIP = ("slow: builds the full-size ImageNet architectures (minutes on 2 cores); "
             "run with --run-slow (make test does) or select with -m slow")


def skip_slow_unless_asked(config, items) -> None:
    """Tests marked slow run only with --run-slow or when the marker expression names slow.

    Matrix cases are exempt: their zoo is chosen with --zoo, and choosing imagenet is asking.
    """
    if config.option.run_slow or "slow" in (config.option.markexpr or ""):
        return
    for item in items:
        if item.get_closest_marker("slow") and "configuration" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=SLOW_SKIP))


def check_selection(config, items) -> None:
    """An empty selection is a usage error that shows what can be selected."""
    if items or hasattr(config, "workerinput"):
        return
    if not config.option.keyword and not config.option.markexpr:
        return
    example = matrix()[0].id
    raise pytest.UsageError(
        f"no test case matches -k {config.option.keyword!r} -m {config.option.markexpr!r}. Matrix case ids are "
        f"framework-model-attack-quantization-platform, e.g. {example!r}; frameworks "
        f"{sorted({c.framework for c in matrix()})}, models {sorted({c.model for c in matrix()})}, attacks "
        f"{sorted({c.attack for c in matrix()})}, quantizations ['float', 'int8'], platforms {list(PLATFORMS)}; "
        "markers pc, device, slow, imagenet"
    )


def planned_configurations(session, configuration: Configuration) -> list[Configuration]:
    """The configurations this process will run on ``configuration``'s platform: every selected
    case, or under pytest-xdist the ones of its framework-model group (the worker that runs one
    runs them all)."""
    configs = [item.callspec.params["configuration"] for item in session.items
               if "configuration" in getattr(getattr(item, "callspec", None), "params", {})]
    same = [c for c in configs if c.platform == configuration.platform]
    if hasattr(session.config, "workerinput"):
        same = [c for c in same if (c.framework, c.model) == (configuration.framework, configuration.model)]
    return same or [configuration]


def check_device_choice(config, items) -> None:
    """Device cases selected, several phones attached and none chosen: a usage error listing them."""
    if hasattr(config, "workerinput") or config.option.device_serial or os.environ.get("ANDROID_SERIAL") \
            or config.option.virtual_phone == "always":
        return
    if not any(getattr(getattr(i, "callspec", None), "params", {}).get("configuration") is not None
               and i.callspec.params["configuration"].platform == "device" for i in items):
        return
    serials, _ = attached_devices_or_skip_reason()  # a broken adb: the cases skip saying so
    if len(serials) > 1:
        raise pytest.UsageError(f"{len(serials)} phones are attached ({', '.join(serials)}): choose one with "
                                "--device-serial SERIAL or $ANDROID_SERIAL")


def device_for_session(config, options: "RunOptions"):
    """Yield the serial of the phone for this session's device cases (see conftest's device_serial)."""
    from android_harness import adb

    chosen = config.option.device_serial or os.environ.get("ANDROID_SERIAL")
    serials, broken = attached_devices_or_skip_reason()
    if broken:
        pytest.skip(broken)
    if config.option.virtual_phone != "always" and (chosen or serials):
        try:
            yield adb.choose_serial(chosen)
        except adb.AdbError as exc:
            pytest.skip(str(exc))
        return
    if config.option.virtual_phone == "never":
        pytest.skip(DEVICE_SKIP)
    from android_harness.virtual_phone import VirtualPhone, VirtualPhoneUnavailable, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"{DEVICE_SKIP}; and the virtual phone cannot start on this host: {reason}")
    cache = ArtifactCache(options.cache_dir) if options.cache_dir else ArtifactCache()
    # Kept beside the cache: the bundle and files pushed to the virtual phone stay for the next run.
    phone = VirtualPhone(cache.root / ".virtual-phone" / "vphone0", name="vphone0", log=_progress)
    try:
        serial = phone.start()
    except VirtualPhoneUnavailable as exc:
        pytest.skip(f"{DEVICE_SKIP}; and the virtual phone did not start: {exc}")
    _progress(f"device cases: running on the virtual phone {serial}"
              + ("" if serials else " (no phone attached)"))
    try:
        yield serial
    finally:
        phone.stop()


class AdbBroken(RuntimeError):
    """adb is installed but unusable: its server cannot be started, or answers garbage."""


def attached_devices() -> list[str]:
    """Serials of phones the local ADB server sees (starting the server if adb is installed).

    No adb tool or no ppadb: [] (no phone). An adb server that cannot be started, or one
    that answers but not as an adb server: :class:`AdbBroken` naming the command or address
    and what came back, so a broken adb is not reported as "no phone attached"."""
    try:
        from ppadb.client import Client  # noqa: F401
    except ImportError:
        return []
    from android_harness import adb

    host, port = adb.server_address()
    if not _listening(host, port):
        if shutil.which("adb") is None:
            return []
        _start_adb_server()
        if not _listening(host, port):
            raise AdbBroken(f"`adb start-server` succeeded but nothing listens on {host}:{port} "
                            f"(${adb.SERVER_PORT_ENV}={os.environ.get(adb.SERVER_PORT_ENV, '')!r})")
    try:
        return [d.serial for d in adb.client(host, port).devices()]
    except Exception as exc:  # something listens there, but it is not an adb server that works
        raise AdbBroken(f"the adb server at {host}:{port} does not answer `adb devices` as an adb server should "
                        f"({type(exc).__name__}: {str(exc).strip()[:300]})") from None


def _listening(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _start_adb_server() -> None:
    """`adb start-server`; AdbBroken naming the command and its output when it fails."""
    try:
        done = subprocess.run(["adb", "start-server"], capture_output=True, text=True, errors="replace", timeout=30)
    except subprocess.TimeoutExpired:
        raise AdbBroken("`adb start-server` did not finish in 30 s") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-1000:] or "(no output)"
        raise AdbBroken(f"`adb start-server` ({shutil.which('adb')}) exited with status {done.returncode}: {output}")


def attached_devices_or_skip_reason() -> tuple[list[str], str | None]:
    """(serials, None), or ([], why) when adb is broken: device cases then skip saying so."""
    try:
        return attached_devices(), None
    except AdbBroken as exc:
        return [], f"adb is installed but broken: {exc}"


def fail_run_wide_errors_in_one_line():
    """Wrap a case's call: a failure that is a fact of the whole run (fewer eligible images than
    the samples asked for) becomes that one-line message, not a traceback in every case."""
    from harness.data.samples import PoolTooSmall

    try:
        return (yield)
    except PoolTooSmall as exc:
        message = f"sample selection: {exc}"
    pytest.fail(message, pytrace=False)  # outside the handler: no "during handling" chain


def write_gates(options: RunOptions, records: list[dict], say) -> None:
    """Gates from this run's records for every platform whose whole matrix ran; the other
    platforms keep their gates from the existing file (a phone's gates can be written by
    `-m device` alone). The host platforms are written together or not at all."""
    ran = {r["configuration"]: r for r in records}
    complete = {p for p in PLATFORMS if all(c.id in ran for c in matrix((p,)))}
    host_complete = set(HOST_PLATFORMS) <= complete
    platforms = (set(HOST_PLATFORMS) if host_complete else set()) | ({"device"} & complete)
    if not platforms:
        missing = [c.id for c in matrix(HOST_PLATFORMS) if c.id not in ran]
        say(f"thresholds NOT written: {len(missing)} host configurations did not run (e.g. {missing[0]}); "
            "run the whole `-m pc` matrix (or the whole `-m device` matrix) with --write-thresholds")
        return
    gates = {}
    if options.thresholds_path.is_file():
        try:
            old = json.loads(options.thresholds_path.read_text()).get("gates", {})
        except (OSError, ValueError):
            old = {}
        gates = {k: v for k, v in old.items() if Configuration.parse(k).platform not in platforms}
    gates.update({cid: gating.gates_from_measurement(r["platform"], r, options.margin)
                  for cid, r in ran.items() if r["platform"] in platforms})
    gating.write_thresholds(options.thresholds_path, options.zoo, options.profile_name, gates,
                            options.margin, options.run_id)
    say(f"wrote the gates of {sorted(platforms)} ({sum(Configuration.parse(k).platform in platforms for k in gates)} "
        f"configurations; {len(gates)} in the file) to {options.thresholds_path} (margin {options.margin})")


def write_record(options: RunOptions, record: dict) -> Path:
    path = options.records_dir / f"{record['configuration']}.json"
    atomic_write(path, json.dumps(record))
    return path


def read_records(options: RunOptions) -> list[dict]:
    if not options.records_dir.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(options.records_dir.glob("*.json"))]


def finish_run(config, exitstatus) -> None:
    """On the controller: write the report, and the threshold file when asked to."""
    if hasattr(config, "workerinput") or not hasattr(config, "harness_run"):
        return
    options: RunOptions = config.harness_run
    records = read_records(options)
    if not records:
        return
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    say = terminal.write_line if terminal else print
    if options.write_thresholds:
        write_gates(options, records, say)
    from harness.report import writer

    run_info = {"run": options.run_id, "zoo": options.zoo, "profile": options.profile.to_dict(),
                "thresholds": str(options.thresholds_path), "exitstatus": int(exitstatus)}
    out = writer.write_report(records, run_info, options.run_dir)
    say(f"report: {getattr(out, 'report_html', None) or options.run_dir} ({len(records)} configurations)")
