"""profiles.toml: the paper's numbers exactly, and clear errors for a bad profile."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.attack import profiles, registry
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
    with pytest.raises(ProfileError, match=r"bim has unknown keys \['stepz'\]; it takes \['eps', 'steps', 'rel_stepsize'\]"):
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


NEW = {
    "pgd": "pgd = { eps = 0.1, steps = 3, rel_stepsize = 0.25, random_start = true }",
    "deepfool": "deepfool = { eps = 0.1, steps = 5, candidates = 4, overshoot = 0.02, loss = \"logits\" }",
    "cw": "cw = { eps = 1.0, binary_search_steps = 2, steps = 5, confidence = 0 }",
    "hsj": "hsj = { steps = 2, constraint = \"linf\", init_directions = 5, init_retries = 1 }",
}
WITH_NEW = VALID + "\n".join(NEW.values()) + "\n"


@pytest.mark.parametrize("old, new, message", [
    ("random_start = true", "random_start = 1", "pgd.random_start must be true or false, got 1"),
    ('constraint = "linf"', 'constraint = "l1"', "hsj.constraint must be one of ['l2', 'linf'], got 'l1'"),
    ('loss = "logits"', 'loss = "hinge"', "deepfool.loss must be one of ['logits', 'crossentropy'], got 'hinge'"),
    ("candidates = 4", "candidates = 1", "deepfool.candidates must be an integer >= 2, got 1"),
    ("overshoot = 0.02", "overshoot = -0.5", "deepfool.overshoot must be a non-negative number, got -0.5"),
    ("cw = { eps = 1.0,", "cw = { eps = inf,", "cw.eps must be a positive L2 distance on the [0, 1] pixel scale, got inf"),
    ("cw = { eps = 1.0,", "cw = { eps = nan,", "cw.eps must be a positive L2 distance on the [0, 1] pixel scale, got nan"),
    ("cw = { eps = 1.0,", "cw = {", "cw is missing ['eps']: eps: a positive L2 distance on the [0, 1] pixel scale"),
    ("confidence = 0", "confidence = -1", "cw.confidence must be a non-negative number, got -1"),
    ("steps = 2, constraint", "steps = 2.0, constraint", "hsj.steps must be a positive integer, got 2.0"),
    ('constraint = "linf",', 'constraint = "linf", gama = 1,', "hsj has unknown keys ['gama']; it takes ['steps' (default 64),"),
    ("pgd = { eps = 0.1,", "pgd = { eps = 2,", "pgd.eps must be in (0, 1] on the [0, 1] pixel scale, got 2"),
    ("pgd = {", "pdg = {", "unknown attack 'pdg'; registered attacks are ['fgsm', 'bim', 'boundary', 'pgd', "),
    (NEW["hsj"], "hsj = 3", "hsj must be a table"),
])
def test_bad_attack_parameters_name_the_file_profile_attack_key_and_expectation(tmp_path, old, new, message):
    assert old in WITH_NEW
    path = _write(tmp_path, WITH_NEW.replace(old, new, 1))
    with pytest.raises(ProfileError) as caught:
        profiles.load_profiles(path)
    assert f"{path} [p]: {message}" in str(caught.value)


def test_a_profile_runs_the_attacks_it_has_tables_for_in_registry_order(tmp_path):
    body = GOOD.split("fgsm =")[0]  # the settings, no attack
    path = _write(tmp_path, body + NEW["hsj"] + "\n" + NEW["pgd"] + "\nfgsm = { eps = 0.1 }\n")
    profile = profiles.load_profile("p", path)
    assert profile.attack_names == ("fgsm", "pgd", "hsj")  # registry order, not the file's
    # defaults filled in and recorded: what ran is what the cache key and the fingerprint say
    assert profile.attack_params("hsj") == {"steps": 2, "constraint": "linf", "init_directions": 5, "init_retries": 1,
                                            "initial_gradient_eval_steps": 100, "max_gradient_eval_steps": 10000,
                                            "gamma": 1.0, "stepsize_search": "geometric_progression"}
    with pytest.raises(ProfileError, match=r"profile 'p' has no attack 'bim'; it has \['fgsm', 'hsj', 'pgd'\]"):
        profile.attack_params("bim")
    none = _write(tmp_path, body)
    with pytest.raises(ProfileError, match=rf"{none} \[p\]: runs no attack; give a table .* for at least one of "
                                           r"\['fgsm', 'bim', 'boundary', 'pgd', 'deepfool', 'cw', 'hsj', 'square'\]"):
        profiles.load_profiles(none)


def test_committed_profiles_keep_their_attacks_and_extended_adds_the_new_four():
    loaded = profiles.load_profiles()
    for name in ("paper", "default", "smoke"):
        assert loaded[name].attack_names == ("fgsm", "bim", "boundary")
    extended, default = loaded["extended"], loaded["default"]
    assert extended.transfer_names == ("fgsm", "bim", "boundary", "pgd", "deepfool", "cw", "hsj")
    assert extended.attack_names == extended.transfer_names + ("direct_boundary", "direct_hsj", "direct_square")
    assert {a: extended.attack_params(a) for a in default.attack_names} == default.attacks
    assert (extended.samples, extended.seed, extended.calibration) == (default.samples, default.seed, default.calibration)


def test_the_default_profile_still_matches_the_committed_baselines_fingerprint():
    import json
    from pathlib import Path

    from harness.metrics.gates import compare_fingerprints
    from harness.study import Study

    baseline = json.loads((Path(profiles.PROFILES_FILE).parent / "thresholds" / "mini-default.json").read_text())
    default = load_profile("default")
    run = Study.fingerprint_of(default, default.samples)
    assert run["attacks"] == baseline["fingerprint"]["attacks"]
    assert compare_fingerprints(baseline["fingerprint"], run) == ([], [])


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
                             "fgsm", "bim", "boundary", "pgd", "hsj", "cw", "eps", "steps", "extra", "[p]", "[q.fgsm]",
                             "[p.deepfool]"])


def _load_or_profile_error(tmp_path_factory, data: bytes):
    path = tmp_path_factory.mktemp("fuzz") / "profiles.toml"
    path.write_bytes(data)
    try:
        loaded = profiles.load_profiles(path)
    except ProfileError as exc:
        assert str(path) in str(exc), exc
        return
    for profile in loaded.values():  # what loads is usable
        assert profile.samples > 0 and profile.attacks and set(profile.attacks) <= set(registry.names())
        assert profile.attack_names == tuple(a for a in registry.names() if a in profile.attacks)


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


BOUNDARY = "steps = 5, spherical_step = 0.01, source_step = 0.01, init_directions = 5, init_retries = 1"
DIRECT = """[p]
samples = 10
calibration = 5
seed = 0
attack_batch_size = 5
fgsm = { eps = 0.1 }
[p.direct]
BODY
"""


def test_direct_table_names_decision_and_score_attacks_with_their_own_parameters(tmp_path):
    body = ("samples = 4\nemulated_samples = 2\nsquare = { eps = 0.05, max_iter = 10 }\n"
            f"boundary = {{ {BOUNDARY} }}")
    profile = load_profile("p", _write(tmp_path, DIRECT.replace("BODY", body)))
    assert profile.attack_names == ("fgsm", "direct_boundary", "direct_square")  # registry order
    assert profile.transfer_names == ("fgsm",)
    assert (profile.direct_samples, profile.direct_emulated_samples) == (4, 2)
    assert profile.attack_params("direct_square")["max_iter"] == 10
    assert profile.attack_params("direct_square")["nb_restarts"] == 1  # default filled in and recorded


@pytest.mark.parametrize("body, words", [
    ("fgsm = { eps = 0.1 }", ["direct.fgsm is a gradient attack", "decision or score", "boundary"]),
    ("noattack = { eps = 0.1 }", ["direct.noattack is not a registered attack"]),
    ("samples = 3", ["direct runs no attack"]),
    ("samples = 0\nsquare = { eps = 0.1, max_iter = 5 }", ["direct.samples must be a positive integer, got 0"]),
    ("square = { eps = 0.1, max_iter = -1 }", ["direct.square.max_iter"]),
    ("boundary = 3", ["direct.boundary must be a table"]),
])
def test_bad_direct_table_names_file_profile_and_key(tmp_path, body, words):
    path = _write(tmp_path, DIRECT.replace("BODY", body))
    with pytest.raises(ProfileError) as err:
        load_profile("p", path)
    assert str(path) in str(err.value) and "[p]" in str(err.value)
    for word in words:
        assert word in str(err.value)
