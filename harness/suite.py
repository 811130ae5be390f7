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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import byo
from harness.attack.profiles import ProfileError, load_profile, load_profiles
from harness.cache import ArtifactCache, atomic_write
from harness.data import sources
from harness.data.dataset import DataError
from harness.metrics import gates as gating
from harness.study import HOST_PLATFORMS, PLATFORMS, RUNNER_PLATFORMS, Configuration, Study, matrix
from harness.zoo import registry
from harness.zoo.registry import ZOOS  # noqa: F401  (conftest offers these as --zoo choices)

# The profile a zoo runs when --profile is not given: the mini zoo's is sized for it;
# the imagenet zoo replicates the paper; the real zoo's is sized for its few 224x224 photos.
ZOO_PROFILES = {"mini": "default", "imagenet": "paper", "user": "user", "real": "real"}

FINGERPRINT_FILE = "fingerprint.json"

DEVICE_SKIP = ("no Android phone attached over ADB: enable USB debugging on the phone, plug it in, "
               "accept the host key, and check that `adb devices` lists it")


def check_virtual_phones(opt) -> None:
    """--virtual-phones N: N >= 1, not with --virtual-phone never or --device-serial; it implies
    --virtual-phone always (N = 1 is today's single virtual phone)."""
    n = getattr(opt, "virtual_phones", None)
    if n is None:
        return
    if n < 1:
        raise pytest.UsageError(f"--virtual-phones must be at least 1, got {n}")
    if opt.virtual_phone == "never" or opt.device_serial:
        raise pytest.UsageError("--virtual-phones runs the device cases on virtual phones: drop "
                                + ("--virtual-phone never" if opt.virtual_phone == "never" else "--device-serial"))
    opt.virtual_phone = "always"


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
    baseline: gating.Baseline | None  # None: no baseline yet (cases then fail saying how to propose one)
    imagenet_dir: Path | None = None
    # The image source, when validating the options already opened it (indexing an ImageNet
    # folder reads 50,000 directory entries and a label file: done once, not twice).
    source: sources.StudySource | None = field(default=None, compare=False, repr=False)
    # How many matrix cases this session gates (the m in each case's alpha/m); set at collection.
    gated_cases: int = 1
    _fingerprint_errors: list | None = field(default=None, compare=False, repr=False)
    fingerprint_notes: list = field(default_factory=list, compare=False, repr=False)
    # Bring your own model and images: the options, and (when --model is given) the validated
    # models and image source (harness.byo.UserStudyInputs), loaded once when the options are read.
    user_inputs: byo.UserInputs = field(default_factory=byo.UserInputs, compare=False, repr=False)
    user: byo.UserStudyInputs | None = field(default=None, compare=False, repr=False)
    # Who runs the adversarial sets' chunks: "local" (this process) or "ray" (a Ray cluster at
    # ray_address, or a new local Ray). Recorded in reports/<run>/executor.json, never in a key.
    executor: str = "local"
    ray_address: str | None = None

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
        user_inputs = byo.UserInputs.from_options(opt)
        user = None
        if user_inputs.given:  # a missing file, a card that contradicts its model...: exit 4, naming the file
            try:
                user = user_inputs.load()
                opt.zoo = user.activate()  # the run's own models are its zoo
            except byo.InputError as exc:
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
        check_virtual_phones(opt)
        source = None if user is None else user.images
        if opt.zoo == "imagenet" and (opt.imagenet_dir or os.environ.get(sources.IMAGENET_DIR_ENV)):
            try:  # a folder that is named but unusable is the user's typo: say so now, not in 90 cases
                source = sources.source_for(opt.zoo, opt.imagenet_dir)
            except DataError as exc:
                raise pytest.UsageError(str(exc)) from None
        path = Path(opt.thresholds) if opt.thresholds else gating.default_path(opt.zoo, opt.profile)
        baseline = None
        if path.is_file():
            try:
                baseline = gating.load_baseline(path, [c.id for c in matrix(attacks=profiles[opt.profile].attack_names, zoo=opt.zoo)],
                                                opt.zoo, opt.profile)
            except gating.ThresholdError as exc:
                if not opt.write_thresholds:
                    raise pytest.UsageError(str(exc)) from None
        elif opt.thresholds and not opt.write_thresholds:
            raise pytest.UsageError(f"--thresholds {path}: file not found")
        options = cls(opt.zoo, opt.profile, opt.samples, Path(opt.cache_dir) if opt.cache_dir else None,
                      Path(opt.report_dir), os.environ.get("HARNESS_RUN_ID", "manual"), path,
                      opt.write_thresholds, opt.threshold_margin, opt.threads, baseline,
                      Path(opt.imagenet_dir) if opt.imagenet_dir else None, source)
        options.user_inputs, options.user = user_inputs, user
        options.executor, options.ray_address = executor_options(getattr(opt, "executor", "local"), getattr(opt, "ray_address", None),
                                                                    pytest.UsageError)
        if baseline is not None:
            # What is known before any model loads: a run on other samples or attack
            # parameters is a usage error (exit 4), not 90 verdicts against the wrong limits.
            errors, _ = gating.compare_fingerprints(baseline.fingerprint, options.cheap_fingerprint())
            if errors and not opt.write_thresholds:
                raise pytest.UsageError(str(gating.fingerprint_error(path, errors)))
            if errors:
                options.baseline = None  # writing a proposal for other settings: nothing to gate against
        return options

    def propose_command(self) -> str:
        """The command that proposes this run's baseline."""
        if self.user is not None:
            return f"pytest -m pc {self.user.command_options()} --write-thresholds"
        extra = "" if (self.zoo, self.profile_name) == ("mini", "default") else \
            f" --zoo {self.zoo} --profile {self.profile_name}"
        return f"pytest -m pc{extra} --write-thresholds"

    def matrix(self, platforms=PLATFORMS) -> list[Configuration]:
        """The configurations of this run's profile (its attacks) on ``platforms``."""
        return matrix(platforms, self.profile.attack_names, self.zoo)

    def cheap_fingerprint(self) -> dict:
        profile = self.profile
        return Study.fingerprint_of(profile, self.samples or profile.samples)

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
        if self.user is not None:
            self.user.label_images()  # an unlabelled folder: the reference model's clean predictions, said so
        return Study(self.zoo, self.profile, cache, self.samples, self.threads, log=_progress, source=source,
                     **study_executor(self.executor, self.ray_address, self.run_dir, _progress))

    def run_fingerprint(self, study: Study) -> dict:
        """The study's full fingerprint, computed once per process and kept beside the records
        (the controller proposes a baseline from it; under xdist it holds no study)."""
        if not hasattr(self, "_run_fingerprint"):
            self._run_fingerprint = study.fingerprint()
            path = self.run_dir / FINGERPRINT_FILE
            if not path.is_file():
                atomic_write(path, json.dumps(self._run_fingerprint, indent=1))
        return self._run_fingerprint

    def baseline_for(self, config: Configuration, study: Study) -> gating.Baseline | None:
        """The baseline this case is judged against, after checking (once per session) that it
        was measured on what this run measures; None when writing a proposal without one."""
        if self.baseline is None:
            if self.write_thresholds:
                self.run_fingerprint(study)
                return None
            pytest.fail(f"no baseline at {self.thresholds_path}: propose one from a trusted run with "
                        f"`{self.propose_command()}`, review "
                        f"{gating.proposal_path(self.thresholds_path)} and move it into place (or point "
                        f"--thresholds at a baseline you keep elsewhere)", pytrace=False)
        if self._fingerprint_errors is None:
            errors, notes = gating.compare_fingerprints(self.baseline.fingerprint, self.run_fingerprint(study))
            self._fingerprint_errors, self.fingerprint_notes = errors, notes
            if notes:
                _progress(f"{len(notes)} differences from the baseline's run that the gates judge: "
                          + "; ".join(notes[:8]) + (" ..." if len(notes) > 8 else ""))
        if self._fingerprint_errors:
            if self.write_thresholds:
                return None
            pytest.fail(str(gating.fingerprint_error(self.thresholds_path, self._fingerprint_errors)), pytrace=False)
        if config.id not in self.baseline.entries and not self.baseline.expects_conversion_failure(config.id):
            if self.write_thresholds:  # proposing this configuration's first entry
                return None
            pytest.fail(f"{self.thresholds_path} has no baseline for {config.id}; every configuration needs one "
                        "(propose a complete baseline with --write-thresholds)", pytrace=False)
        return self.baseline


def executor_options(name: str, address: str | None, error=ValueError) -> tuple[str, str | None]:
    """``--executor`` and ``--ray-address`` checked: an address without ``--executor ray``, or
    one where no Ray head listens, is the user's error, said at once (``error``: the exception
    type the caller reports usage errors with)."""
    from harness.executor import EXECUTORS, ExecutorError

    if name not in EXECUTORS:
        raise error(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if address and name != "ray":
        raise error("--ray-address needs --executor ray")
    if address:
        from harness.executor.ray_executor import check_reachable

        try:
            check_reachable(address)
        except ExecutorError as exc:
            raise error(str(exc)) from None
    return name, address or None


def study_executor(name: str, address: str | None, run_dir: Path, log) -> dict:
    """A study's executor and progress file (``reports/<run>/progress.json``), and the executor
    described in ``reports/<run>/executor.json`` (for Ray: its version, address and nodes)."""
    from harness.executor import make_executor
    from harness.executor.progress import ProgressFile

    executor = make_executor(name, address, log)
    try:
        described = executor.describe()
    except Exception as exc:  # noqa: BLE001  (a Ray that cannot be joined: the cases say why)
        raise RuntimeError(f"--executor {name}: {exc}") from None
    atomic_write(run_dir / "executor.json", json.dumps(described, indent=1))
    if name != "local":
        log(f"executor: {json.dumps(described)}")
    return {"executor": executor, "progress_file": ProgressFile(run_dir / "progress.json")}


def executor_info(run_dir: Path) -> dict | None:
    """What ``reports/<run>/executor.json`` says (None: no study was made in this run)."""
    path = run_dir / "executor.json"
    return json.loads(path.read_text()) if path.is_file() else None


def count_gated_cases(config, items) -> None:
    """The number of matrix cases this session runs: each case's share of the error budget."""
    if hasattr(config, "harness_run"):
        # distinct configurations: with several phones each phone's case is judged as a one-phone run's
        config.harness_run.gated_cases = max(1, len({
            i.callspec.params["configuration"].id for i in items
            if "configuration" in getattr(getattr(i, "callspec", None), "params", {})}))


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
    """One case per configuration; with several phones (see :func:`session_phones`) one device case
    per configuration and phone, ``<id>@<phone>``, each phone's cases in one xdist group (its worker
    runs them all on that phone). With one phone the ids and groups are the configurations' own."""
    zoo = metafunc.config.option.zoo
    phones = session_phones(metafunc.config) if "phone_key" in metafunc.fixturenames else []
    params = []
    for config in metafunc.config.harness_run.matrix():
        marks = [pytest.mark.pc if config.platform in HOST_PLATFORMS else pytest.mark.device]
        if zoo == "imagenet":
            marks += [pytest.mark.imagenet, pytest.mark.slow]
        group = pytest.mark.xdist_group(f"{config.framework}-{config.model}")
        if not phones:
            params.append(pytest.param(config, id=config.id, marks=[marks[0], group, *marks[1:]]))
        elif config.platform != "device":
            params.append(pytest.param(config, None, id=config.id, marks=[marks[0], group, *marks[1:]]))
        else:
            params += [pytest.param(config, phone.key, id=f"{config.id}@{phone.key}",
                                    marks=[marks[0], pytest.mark.xdist_group(f"device@{phone.key}"), *marks[1:]])
                       for phone in phones]
    metafunc.parametrize(("configuration", "phone_key") if phones else "configuration", params)


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
    configurations = config.harness_run.matrix()
    example = configurations[0].id
    runtimes = sorted({c.runtime for c in configurations if c.runtime})
    raise pytest.UsageError(
        f"no test case matches -k {config.option.keyword!r} -m {config.option.markexpr!r}. Matrix case ids are "
        f"framework-model-attack-quantization-platform, e.g. {example!r}"
        + (f" (framework-model-attack-quantization-runtime-platform for a framework's weights on another "
           f"runtime: {runtimes})" if runtimes else "")
        + f"; frameworks {sorted({c.framework for c in configurations})}, models "
        f"{sorted({c.model for c in configurations})}, attacks {list(dict.fromkeys(c.attack for c in configurations))} "
        f"(profile {config.harness_run.profile_name}), quantizations ['float', 'int8'], platforms {list(PLATFORMS)}; "
        "markers pc, device, slow, imagenet"
    )


def planned_configurations(session, configuration: Configuration, phone_key: str | None = None) -> list[Configuration]:
    """The configurations this process will run on ``configuration``'s platform: every selected
    case, or under pytest-xdist the ones of its framework-model group (the worker that runs one
    runs them all). With several phones, those of ``phone_key``'s phone (one xdist group)."""
    params = [item.callspec.params for item in session.items
              if "configuration" in getattr(getattr(item, "callspec", None), "params", {})]
    same = [p["configuration"] for p in params if p["configuration"].platform == configuration.platform
            and p.get("phone_key") == phone_key]
    if hasattr(session.config, "workerinput") and phone_key is None:
        same = [c for c in same if (c.framework, c.model) == (configuration.framework, configuration.model)]
    return same or [configuration]


# Without a real phone, the device cases run on the virtual phone: the same aarch64 runner that the
# arm64 platform runs under qemu-user, so its results repeat arm64's bit for bit. By default it runs
# one model per framework (every runtime and quantization keeps a gated device case);
# --virtual-phone-scope full runs them all, and a real phone always runs them all.
VIRTUAL_PHONE_SCOPES = ("sample", "full")


def _runs_on_the_virtual_phone(config) -> bool:
    """Whether this session's device cases will run on one virtual phone (see device_for_session)."""
    option = config.option
    if getattr(option, "virtual_phones", None):  # several (or explicitly counted) virtual phones: all cases
        return False
    if option.virtual_phone == "always":
        return True
    if option.virtual_phone == "never" or option.device_serial or os.environ.get("ANDROID_SERIAL"):
        return False
    serials, broken = attached_devices_or_skip_reason()
    return not serials and not broken


def sample_virtual_phone_cases(config, items) -> None:
    """On the virtual phone, keep the device cases of the first model of each framework; deselect the
    rest, saying so in one line. Runs after count_gated_cases, so a kept case's share of the error
    budget (and so its verdict) is the one a full run gives it."""
    if getattr(config.option, "virtual_phone_scope", "full") == "full":
        return
    device = [i for i in items if getattr(getattr(i, "callspec", None), "params", {}).get("configuration")
              is not None and i.callspec.params["configuration"].platform == "device"]
    if not device or not _runs_on_the_virtual_phone(config):
        return
    first: dict[str, str] = {}
    for item in device:
        c = item.callspec.params["configuration"]
        first.setdefault(c.framework, c.model)
    dropped = [i for i in device if first[i.callspec.params["configuration"].framework]
               != i.callspec.params["configuration"].model]
    if not dropped:
        return
    gone = set(map(id, dropped))
    items[:] = [i for i in items if id(i) not in gone]
    config.hook.pytest_deselected(items=dropped)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        models = ", ".join(f"{f} {m}" for f, m in first.items())
        reporter.write_line(f"virtual phone: {len(device) - len(dropped)} of {len(device)} device cases run "
                            f"({models}; its results repeat arm64's bit for bit); "
                            "--virtual-phone-scope full runs all")


def check_device_choice(config, items) -> None:
    """Device cases selected, several phones attached and none chosen: a usage error listing them."""
    if hasattr(config, "workerinput") or config.option.device_serial or os.environ.get("ANDROID_SERIAL") \
            or config.option.virtual_phone == "always" or session_phones(config):
        return
    if not any(getattr(getattr(i, "callspec", None), "params", {}).get("configuration") is not None
               and i.callspec.params["configuration"].platform == "device" for i in items):
        return
    serials, _ = attached_devices_or_skip_reason()  # a broken adb: the cases skip saying so
    if len(serials) > 1:
        raise pytest.UsageError(f"{len(serials)} phones are attached ({', '.join(serials)}): choose one with "
                                "--device-serial SERIAL or $ANDROID_SERIAL, or run the device cases on every one "
                                "with -m device (-n N: one xdist worker per phone)")


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
    try:
        phone, serial = start_virtual_phone(options, "vphone0")
    except _PhoneSkip as exc:
        pytest.skip(f"{DEVICE_SKIP}; and the {exc}")
    _progress(f"device cases: running on the virtual phone {serial}"
              + ("" if serials else " (no phone attached)"))
    try:
        yield serial
    finally:
        phone.stop()


@dataclass(frozen=True)
class Phone:
    """One of several phones of a session: ``key`` names it in case ids and record files (adb's
    serial of an attached phone, ``vphone<i>`` for a virtual one, its ro.serialno)."""
    key: str
    serial: str | None = None  # an attached phone's; a virtual phone's is known once started
    virtual: int | None = None  # the index of a virtual phone


def session_phones(config) -> list[Phone]:
    """The phones this session's device cases run on when there are several, [] for one (today's
    single-phone behaviour: ids, records and the device_serial fixture unchanged).

    Several: ``--virtual-phones N`` (N > 1) starts N virtual phones; otherwise every phone
    attached, when more than one is and none is chosen (--device-serial, $ANDROID_SERIAL,
    --virtual-phone always). Decided once per process, identically in every xdist worker; adb
    is asked only when its server runs already or the selection names device cases."""
    cached = getattr(config, "_harness_phones", None)
    if cached is not None:
        return cached
    phones: list[Phone] = []
    n = getattr(config.option, "virtual_phones", None)
    if n:
        phones = [Phone(f"vphone{i}", None, i) for i in range(n)] if n > 1 else []
    elif not (config.option.device_serial or os.environ.get("ANDROID_SERIAL")) \
            and config.option.virtual_phone != "always" and _may_ask_adb(config):
        serials, broken = attached_devices_or_skip_reason()
        if not broken and len(serials) > 1:
            phones = [Phone(s, s) for s in serials]
    config._harness_phones = phones
    return phones


def _may_ask_adb(config) -> bool:
    if "device" in (config.option.markexpr or "") + " " + (config.option.keyword or ""):
        return True
    try:
        from ppadb.client import Client  # noqa: F401

        from android_harness import adb

        return adb.listening(*adb.server_address())
    except Exception:
        return False


def record_file_name(record: dict) -> str:
    """``<configuration>.json``, ``<configuration>@<phone>.json`` when the session has several phones."""
    phone = record.get("phone")
    suffix = "" if not phone else "@" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in phone)
    return f"{record['configuration']}{suffix}.json"


def mark_phone(record: dict, phone_key: str | None, serial: str | None = None) -> dict:
    """With several phones, which phone a record is of: ``phone`` (its key) and ``device`` (adb's
    serial, and the phone's serial number, model and ABI as it reported them when it ran)."""
    if phone_key is None:
        return record
    facts = record.get("transport") if isinstance(record.get("transport"), dict) else {}
    record["phone"] = phone_key
    record["device"] = {"serial": facts.get("serial", serial), "serialno": facts.get("serialno"),
                        "model": facts.get("model"), "abi": facts.get("abi"),
                        "fingerprint": facts.get("fingerprint")}
    return record


class PhonePool:
    """The session's phones when there are several: each phone's serial (a virtual phone started
    when its first case asks for it, so an xdist worker starts only its own) and a study per phone
    (a study's measurements are cached per configuration, so phones cannot share one)."""

    def __init__(self, config, options: "RunOptions"):
        self.options = options
        self.phones = {p.key: p for p in session_phones(config)}
        self._serials: dict[str, str] = {}
        self._failed: dict[str, str] = {}
        self._virtual: list = []
        self._studies: dict[str, Study] = {}

    def serial(self, key: str) -> str:
        if key in self._failed:
            pytest.skip(self._failed[key])
        if key not in self._serials:
            try:
                self._serials[key] = self._connect(self.phones[key])
            except _PhoneSkip as exc:
                self._failed[key] = str(exc)
                pytest.skip(str(exc))
        return self._serials[key]

    def _connect(self, phone: Phone) -> str:
        if phone.virtual is None:
            return phone.serial
        vphone, serial = start_virtual_phone(self.options, phone.key, share_with_first=bool(phone.virtual))
        self._virtual.append(vphone)
        _progress(f"device cases of {phone.key}: running on the virtual phone {serial}")
        return serial

    def study(self, key: str) -> Study:
        serial = self.serial(key)
        if key not in self._studies:
            study = self.options.make_study()
            study.device_serial = serial
            study.record_digests = True  # the devices comparison: identical logits and predictions?
            self._studies[key] = study
        return self._studies[key]

    def close(self) -> None:
        for study in self._studies.values():
            study.close()
        self._studies.clear()
        for vphone in self._virtual:
            vphone.stop()
        self._virtual.clear()


class _PhoneSkip(Exception):
    pass


def start_virtual_phone(options: "RunOptions", key: str, share_with_first: bool = False):
    """Start the virtual phone ``key`` -> (VirtualPhone, serial); :class:`_PhoneSkip` saying why not.

    Its tree is kept beside the cache, so the bundle and files pushed to it stay for the next run;
    ``share_with_first``: hard-link what ``vphone0`` already holds (one copy of the bundle for all)."""
    from android_harness.virtual_phone import VirtualPhone, VirtualPhoneUnavailable, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise _PhoneSkip(f"virtual phone {key} cannot start on this host: {reason}")
    cache = ArtifactCache(options.cache_dir) if options.cache_dir else ArtifactCache()
    vphone = VirtualPhone(cache.root / ".virtual-phone" / key, name=key, log=_progress)
    if share_with_first:
        try:
            vphone.build_tree()
        except Exception:  # noqa: BLE001  (start() below says what is wrong)
            pass
        else:
            vphone.share_pushed_files(cache.root / ".virtual-phone" / "vphone0")
    try:
        return vphone, vphone.start()
    except VirtualPhoneUnavailable as exc:
        raise _PhoneSkip(f"virtual phone {key} did not start: {exc}") from None


def attached_devices_or_skip_reason() -> tuple[list[str], str | None]:
    """(serials, None), or ([], why) when adb is broken: device cases then skip saying so."""
    from android_harness import adb

    try:
        return adb.attached_devices(), None
    except adb.AdbBroken as exc:
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


def write_proposal(options: RunOptions, records: list[dict], say) -> bool:
    """Propose a baseline from this run for every platform whose whole matrix ran (the host
    platforms together, a phone's alone), keeping the live file's other platforms; write it
    beside the live file with what changed. False, and nothing written, when the matrix is
    incomplete or a case ended in an error."""
    # A model that did not convert is part of what the baseline records (an expected failure, with
    # the converter's message); any other error leaves a configuration unmeasured.
    broken = [r["configuration"] for r in records if r.get("error") and not r.get("conversion_failed")]
    if broken:
        say(f"baseline NOT proposed: {len(broken)} configurations ended in an error (e.g. {broken[0]}); "
            "a baseline needs every configuration measured")
        return False
    ran = {r["configuration"]: r for r in records}
    complete = {p for p in PLATFORMS if all(c.id in ran for c in options.matrix((p,)))}
    platforms = (set(HOST_PLATFORMS) if set(HOST_PLATFORMS) <= complete else set()) | ({"device"} & complete)
    if not platforms:
        missing = [c.id for c in options.matrix(HOST_PLATFORMS) if c.id not in ran]
        say(f"baseline NOT proposed: {len(missing)} host configurations did not run (e.g. {missing[0]}); "
            "run the whole `-m pc` matrix (or the whole `-m device` matrix) with --write-thresholds")
        return False
    fp_path = options.run_dir / FINGERPRINT_FILE
    fingerprint = json.loads(fp_path.read_text())
    fingerprint["artifacts"] = {_artifact_name(r): r["artifact_key"] for r in records if r.get("artifact_key")}
    old = options.baseline
    if old is None and options.thresholds_path.is_file():
        try:  # the live file, even measured on something else, keeps the platforms this run did not cover
            old = gating.load_baseline(options.thresholds_path, [c.id for c in options.matrix()], options.zoo,
                                       options.profile_name)
        except gating.ThresholdError:
            old = None
    policy = gating.Policy(practical_margin=options.margin)
    new = gating.propose(records, fingerprint, old, platforms, options.zoo, options.profile_name, policy,
                         options.run_id)
    target = gating.proposal_path(options.thresholds_path)
    gating.write_baseline(target, new)
    changes = gating.describe_changes(old, new)
    atomic_write(options.run_dir / "baseline-changes.txt", "\n".join(changes) + "\n")
    say(f"proposed a baseline for {sorted(platforms)} in {target} ({len(new.entries)} configurations); "
        f"what changed against {options.thresholds_path}: {changes[0]}")
    for line in changes[1:21]:
        say(f"  {line}")
    if len(changes) > 21:
        say(f"  ... {len(changes) - 21} more in {options.run_dir / 'baseline-changes.txt'}")
    say(f"review it, then: mv {target} {options.thresholds_path}  (and commit the diff)")
    return True


def _artifact_name(record: dict) -> str:
    """``framework-model-quantization`` of a converted file, ``-runtime`` added for a non-native runtime."""
    runtime = Configuration.parse(record["configuration"]).runtime
    return "-".join([record["framework"], record["model"], record["quantization"]] + ([runtime] if runtime else []))


def write_record(options: RunOptions, record: dict) -> Path:
    path = options.records_dir / record_file_name(record)
    atomic_write(path, json.dumps(record))
    return path


def write_error_record(options: RunOptions, config: Configuration, exc: BaseException, trace: str,
                       expected: str | None = None, phone_key: str | None = None) -> Path:
    """A configuration that raised: its record says so (the report lists it as an error, or as a
    conversion failure with the converter's message when its model did not convert).
    ``expected``: the baseline's message for a conversion failure it records (the case passes as
    an expected failure)."""
    from harness.study import error_record

    record = error_record(config, exc, trace, options.zoo, options.profile_name)
    if expected and record.get("conversion_failed"):
        record.update(passed=True, verdicts=[f"{config.id}: expected failure: the baseline records that this "
                                             f"model does not convert ({expected[:200]})"])
    return write_record(options, mark_phone(record, phone_key))



def read_records(options: RunOptions) -> list[dict]:
    if not options.records_dir.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(options.records_dir.glob("*.json"))]


def split_phone_records(records: list[dict], phones: list[str]) -> tuple[list[dict], list[dict]]:
    """(the run's records with one record per configuration, every phone's device records).

    Records without a phone (one phone, or the host platforms) are kept as they are; of a
    configuration measured on several phones, the report's main tables, the proposal and the
    run-level check of the whole run take the first phone's (in ``phones``' order); the second
    list, for the devices comparison, holds them all ([] when no record names a phone)."""
    device = [r for r in records if r.get("phone")]
    if not device:
        return records, []
    order = {key: i for i, key in enumerate(phones)}
    first: dict[str, dict] = {}
    for r in sorted(device, key=lambda r: (order.get(r["phone"], len(order)), r["phone"])):
        first.setdefault(r["configuration"], r)
    return [r for r in records if not r.get("phone")] + list(first.values()), device


def phone_runs(records: list[dict], device_records: list[dict]) -> list[tuple[str | None, list[dict]]]:
    """[(phone, the host records and that phone's)] for each phone, or [(None, records)] with one phone."""
    if not device_records:
        return [(None, records)]
    host = [r for r in records if not r.get("phone")]
    phones = list(dict.fromkeys(r["phone"] for r in device_records))
    return [(p, host + [r for r in device_records if r["phone"] == p]) for p in phones]


def finish_run(session, exitstatus) -> None:
    """On the controller: the run-level regression check, the report, and with
    --write-thresholds the proposed baseline. Either of the first two failing, or a proposal
    refused, makes the session's exit status 1."""
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "harness_run"):
        return
    options: RunOptions = config.harness_run
    records = read_records(options)
    if not records:
        return
    records, device_records = split_phone_records(records, [p.key for p in session_phones(config)])
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    say = terminal.write_line if terminal else print
    failed = False
    if options.baseline is not None:
        for phone, judged in phone_runs(records, device_records):  # each phone's run judged as a one-phone run
            extra = [(cid, q) for cid, q in gating.run_level_regressions(judged, options.baseline.policy)
                     if next(r for r in judged if r["configuration"] == cid).get("passed")]
            for cid, q in extra:
                say(f"{cid}{'' if phone is None else '@' + phone}: regression FAILS at the run level: "
                    f"Benjamini-Hochberg adjusted p = {q:.3g} <= {options.baseline.policy.alpha} over "
                    f"{len(judged)} configurations (see its verdicts)")
            failed |= bool(extra)
    if options.write_thresholds:
        failed |= not write_proposal(options, records, say)
    from harness.report import writer

    run_info = {"run": options.run_id, "zoo": options.zoo, "profile": options.profile.to_dict(),
                "thresholds": str(options.thresholds_path), "exitstatus": int(exitstatus),
                "executor": executor_info(options.run_dir)}
    try:
        out = writer.write_report(records, run_info, options.run_dir, device_records=device_records)
    except ValueError as exc:  # e.g. every configuration raised: nothing to report on
        say(f"report NOT written: {exc}")
        failed = True
    else:
        say(f"report: {out.report_html} ({len(records)} configurations)")
    if failed and session.exitstatus == 0:
        session.exitstatus = 1
