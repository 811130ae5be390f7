"""Root pytest configuration: the suite's options, the matrix's shared state, the report.

Importing ``harness`` first installs the framework import guard for every test
process (pytest-xdist workers included), whatever the tests import afterwards.

Options (``pytest --help`` lists them under "on-device robustness suite"):
``--zoo``, ``--profile``, ``--imagenet-dir``, ``--samples``, ``--cache-dir``, ``--report-dir``,
``--thresholds`` (the baseline), ``--write-thresholds`` with ``--threshold-margin``, ``--threads``;
bring your own model and images: ``--model``, ``--source-model``, ``--card``, ``--images``, ``--labels``
(:mod:`harness.byo`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import harness  # noqa: E402,F401  (the import guard; see harness/frameworks.py)
from harness import byo, suite  # noqa: E402

REPO = Path(__file__).resolve().parent


def pytest_addoption(parser):
    group = parser.getgroup("robustness", "on-device robustness suite")
    group.addoption("--zoo", default="mini", choices=suite.ZOOS, help="model zoo (default: mini, the embedded one)")
    group.addoption("--profile", default=None,
                    help="run profile from profiles.toml (default: 'default' for the mini zoo, 'paper' for imagenet, 'real' for real)")
    group.addoption("--imagenet-dir", default=None,
                    help="the ImageNet validation folder the imagenet zoo reads (default: $IMAGENET_DIR)")
    group.addoption("--samples", type=int, default=None, help="evaluation samples (default: the profile's)")
    group.addoption("--cache-dir", default=None, help="artefact cache (default: $HARNESS_CACHE_DIR or .cache/artifacts)")
    group.addoption("--report-dir", default=str(REPO / "reports"), help="where reports/<run>/ goes")
    group.addoption("--thresholds", default=None, help="threshold file (default: thresholds/<zoo>-<profile>.json)")
    group.addoption("--write-thresholds", action="store_true",
                    help="propose a baseline from this run (beside the live file, as <name>.proposed.json, with "
                         "what changed and which gates got looser); the live file is never written")
    group.addoption("--threshold-margin", type=float, default=0.02,
                    help="practical margin of the proposed baseline: a regression fails only if the success "
                         "rate rose by at least this much as well as significantly (default 0.02)")
    group.addoption("--threads", type=int, default=1, help="inference threads per runtime (default 1)")
    group.addoption("--device-serial", default=None,
                    help="the phone for the device cases (default: $ANDROID_SERIAL, else the only one attached)")
    group.addoption("--virtual-phone", default="auto", choices=("auto", "always", "never"),
                    help="run the device cases on the virtual phone when no phone is attached and this host can "
                         "start one (auto, the default), even when phones are attached (always), or never")
    group.addoption("--virtual-phone-scope", default="sample", choices=suite.VIRTUAL_PHONE_SCOPES,
                    help="on the virtual phone, run the device cases of one model per framework (sample, the "
                         "default: its results repeat arm64's bit for bit) or all of them (full); a real phone "
                         "runs them all")
    group.addoption("--virtual-phones", type=int, default=None, metavar="N",
                    help="run the device cases on N virtual phones (each device case once per phone, ids "
                         "<case>@vphone<i>; with -n N each xdist worker starts and uses its own phone). With "
                         "several phones attached and none chosen, the device cases run on every one of them")
    byo.add_options(group.addoption)  # --model, --source-model, --card, --images, --labels (bring your own)
    group.addoption("--executor", default="local", choices=("local", "ray"),
                    help="where adversarial sets' chunks run: local (this process, the default) or ray")
    group.addoption("--ray-address", default=None,
                    help="HOST:PORT of a Ray head for --executor ray (default: start a local Ray)")
    group.addoption("--run-slow", action="store_true",
                    help="also run the tests marked slow (full-size ImageNet architectures; minutes). "
                         "Selecting them with -m slow runs them too")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller names the run; xdist workers inherit it
        os.environ.setdefault("HARNESS_RUN_ID", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    else:
        suite.share_cores_among_workers(config.workerinput["workercount"])
    config.harness_run = suite.RunOptions.from_pytest(config)  # raises pytest.UsageError on bad values


def pytest_generate_tests(metafunc):
    if "configuration" in metafunc.fixturenames:
        suite.parametrize_matrix(metafunc)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    suite.skip_slow_unless_asked(config, items)
    suite.check_selection(config, items)
    suite.check_device_choice(config, items)
    suite.count_gated_cases(config, items)
    suite.sample_virtual_phone_cases(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from suite.fail_run_wide_errors_in_one_line())


@pytest.fixture(scope="session")
def run_options(pytestconfig):
    return pytestconfig.harness_run


@pytest.fixture(scope="session")
def study(run_options):
    study = run_options.make_study()
    yield study
    study.close()


@pytest.fixture
def phone_key():
    """Which phone a device case runs on when the session has several (the matrix parametrizes it
    then, see suite.session_phones); None with one phone."""
    return None


@pytest.fixture(scope="session")
def device_phones(pytestconfig, run_options):
    """The session's phones when there are several: serials (virtual phones started on first use)
    and one study per phone; the virtual phones started are stopped at the end of the session."""
    pool = suite.PhonePool(pytestconfig, run_options)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def device_serial(pytestconfig, run_options):
    """The phone the device cases run on: the one chosen or attached, else the virtual phone
    (started here, stopped at the end of the session), else every device case skips saying why."""
    yield from suite.device_for_session(pytestconfig, run_options)


def pytest_sessionfinish(session, exitstatus):
    suite.finish_run(session, exitstatus)
