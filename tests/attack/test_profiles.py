"""profiles.toml: the paper's numbers exactly, and clear errors for a bad profile."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.attack import profiles
from harness.attack.profiles import ProfileError, load_profile


def test_paper_profile_is_exactly_the_paper():
    paper = load_profile("paper")
    assert (paper.samples, paper.calibration) == (3000, 1000)
    assert paper.attack_params("fgsm") == {"eps": 0.005}
    assert paper.attack_params("bim") == {"eps": 0.005, "steps": 10, "rel_stepsize": 0.2}
    boundary = paper.attack_params("boundary")
    assert (boundary["steps"], boundary["spherical_step"], boundary["source_step"]) == (5000, 0.01, 0.01)
    assert boundary["init_directions"] == 1000  # Foolbox's LinearSearchBlendedUniformNoiseAttack default


def test_all_committed_profiles_load_and_default_uses_whole_grey_levels():
    loaded = profiles.load_profiles()
    assert {"paper", "default", "smoke"} <= set(loaded)
    eps = loaded["default"].attack_params("fgsm")["eps"]
    assert abs(eps * 255 - round(eps * 255)) < 1e-9


def _write(tmp_path, text):
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    return path


GOOD = """[p]
samples = 10
calibration = 5
seed = 0
attack_batch_size = 5
fgsm = { eps = EPS }
bim = { eps = 0.1, steps = 2, rel_stepsize = 0.2 }
boundary = { steps = 3, spherical_step = 0.01, source_step = 0.01, init_directions = 5, init_retries = 1 }
"""


@pytest.mark.parametrize("eps", ["0", "1.5", "-0.01"])
def test_eps_outside_zero_one_is_refused(tmp_path, eps):
    with pytest.raises(ProfileError, match=rf"\[p\]: fgsm.eps must be in \(0, 1\]"):
        profiles.load_profiles(_write(tmp_path, GOOD.replace("EPS", eps)))


def test_good_file_loads_and_unknown_names_are_refused(tmp_path):
    path = _write(tmp_path, GOOD.replace("EPS", "0.03"))
    assert profiles.load_profile("p", path).attack_params("fgsm") == {"eps": 0.03}
    with pytest.raises(ProfileError, match=r"unknown profile 'fast'; profiles.toml defines \['p'\]"):
        profiles.load_profile("fast", path)


def test_missing_or_unknown_keys_and_bad_toml(tmp_path):
    with pytest.raises(ProfileError, match="missing 'seed'"):
        profiles.load_profiles(_write(tmp_path, GOOD.replace("EPS", "0.1").replace("seed = 0\n", "")))
    with pytest.raises(ProfileError, match=r"bim needs exactly .* unknown \['stepz'\]"):
        profiles.load_profiles(_write(tmp_path, GOOD.replace("EPS", "0.1").replace("steps = 2,", "stepz = 2,")))
    with pytest.raises(ProfileError, match="not valid TOML"):
        profiles.load_profiles(_write(tmp_path, "[p\nsamples = "))
    with pytest.raises(ProfileError, match="profiles file not found"):
        profiles.load_profiles(tmp_path / "nope.toml")


VALID = GOOD.replace("EPS", "0.1")


@pytest.mark.parametrize("old, new, message", [
    ("samples = 10", 'samples = "10"', "samples must be a positive integer, got '10'"),
    ("samples = 10", "samples = -3", "samples must be a positive integer, got -3"),
    ("samples = 10", "samples = true", "samples must be a positive integer, got True"),
    ("seed = 0", "seed = 1.5", "seed must be a non-negative integer, got 1.5"),
    ("seed = 0", 'seed = "0"', "seed must be a non-negative integer, got '0'"),
    ("seed = 0\n", "", "missing 'seed'"),
    ("seed = 0", "seed = 0\nsampels = 3", "unknown keys ['sampels']; a profile has"),
    ("fgsm = { eps = 0.1 }", "fgsm = 0.1", "fgsm must be a table"),
    ("steps = 2,", 'steps = "2",', "bim.steps must be a positive integer, got '2'"),
    ("init_retries = 1", "init_retries = -1", "boundary.init_retries must be a non-negative integer, got -1"),
    ("rel_stepsize = 0.2", 'rel_stepsize = "x"', "bim.rel_stepsize must be a positive number, got 'x'"),
    ("calibration = 5", "calibration = 5\ndescription = 3", "description must be a string, got 3"),
    ("calibration = 5", "calibration = 5\nemulated_samples = 0", "emulated_samples must be a positive integer, got 0"),
])
def test_malformed_values_name_the_file_profile_key_and_expectation(tmp_path, old, new, message):
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ProfileError) as caught:
        profiles.load_profiles(path)
    assert f"{path} [p]: {message}" in str(caught.value)


def test_a_top_level_value_that_is_not_a_profile_table_is_refused(tmp_path):
    path = _write(tmp_path, "samples = 3\n" + VALID)
    with pytest.raises(ProfileError, match=r"'samples' must be a profile table \(\[samples\] with its keys\), got 3"):
        profiles.load_profiles(path)


def test_bytes_that_are_not_utf8_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_bytes(b"[p]\nsamples = \xff\n")
    with pytest.raises(ProfileError, match=rf"{tmp_path}.*not UTF-8 text"):
        profiles.load_profiles(path)


def test_environment_variable_points_the_loader_at_another_file(tmp_path, monkeypatch):
    path = _write(tmp_path, VALID)
    monkeypatch.setenv(profiles.PROFILES_ENV, str(path))
    assert profiles.profiles_file() == path
    assert list(profiles.load_profiles()) == ["p"] and profiles.load_profile("p").samples == 10


# -- fuzzing the reader: any file is either profiles or a ProfileError naming it ---------------------
TOML_VALUES = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(repr),
    st.sampled_from(["true", "false", "nan", "-inf", '""', '"x"', "[]", "[1, 2]", "{}", "{ eps = 0.1 }",
                     "1979-05-27", "0x10", "1_000", "'''a'''", "{ steps = 2, steps = 3 }"]),
    st.text(max_size=10).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'))
TOML_KEYS = st.sampled_from(["samples", "calibration", "seed", "attack_batch_size", "emulated_samples", "description",
                             "fgsm", "bim", "boundary", "eps", "steps", "extra", "[p]", "[q.fgsm]"])


def _load_or_profile_error(tmp_path_factory, data: bytes):
    path = tmp_path_factory.mktemp("fuzz") / "profiles.toml"
    path.write_bytes(data)
    try:
        loaded = profiles.load_profiles(path)
    except ProfileError as exc:
        assert str(path) in str(exc), exc
        return
    for profile in loaded.values():  # what loads is usable
        assert profile.samples > 0 and set(profile.attacks) == set(profiles.ATTACKS)


@settings(max_examples=50, deadline=None)
@given(line=st.integers(0, 12), key=TOML_KEYS, value=TOML_VALUES)
def test_fuzz_a_valid_profile_with_one_line_replaced(tmp_path_factory, line, key, value):
    lines = VALID.splitlines()
    replacement = key if key.startswith("[") else f"{key} = {value}"
    lines[line % len(lines)] = replacement
    _load_or_profile_error(tmp_path_factory, "\n".join(lines).encode())


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=300) | st.text(alphabet="[]{}=,.\"' \n#abpfgsmeid0123456789-+_", max_size=200)
       .map(str.encode))
def test_fuzz_random_toml_ish_text(tmp_path_factory, data):
    _load_or_profile_error(tmp_path_factory, data)
