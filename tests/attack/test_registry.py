"""The attack registry: one place, checked declarations, and an attack added there (plus a profile
entry) reaches the matrix, its pytest ids, the fingerprint and generation with no other file touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.attack import profiles, registry
from harness.attack.attacks import Attack, AttackError
from harness.attack.params import Float, Param
from harness.study import Study, matrix

REPO = Path(__file__).resolve().parents[2]

# The new attack, as a user would write it: one class. Its source is also written into a pytest
# plugin for the collection test, so both see the same class.
NOISE_SOURCE = '''
import numpy as np

from harness.attack import registry
from harness.attack.attacks import Attack, AttackOutput, misclassified
from harness.attack.params import Float


class UniformNoise(Attack):
    """Uniform noise in the L-inf ball: the smallest attack there is."""

    name, kind, title = "noise", "score", "Uniform noise"
    params = {"eps": Float("L-inf radius on the [0, 1] scale", high=1)}

    def run(self, model, images01, labels, seed):
        rng = np.random.default_rng(seed)
        eps = float(self.params["eps"])
        out = np.clip(images01 + rng.uniform(-eps, eps, images01.shape), 0, 1).astype(np.float32)
        return AttackOutput(out, misclassified(model, out, labels), np.zeros(0, np.int64))
'''

PROFILE = """[p]
samples = 8
calibration = 8
seed = 0
attack_batch_size = 4
noise = { eps = 0.2 }
fgsm = { eps = 0.01568627450980392 }
"""


@pytest.fixture
def noise_attack():
    namespace: dict = {}
    exec(compile(NOISE_SOURCE, "noise_attack", "exec"), namespace)
    cls = registry.register(namespace["UniformNoise"])
    yield cls
    registry.unregister(cls.name)


@pytest.fixture
def noise_profiles(tmp_path, monkeypatch):
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILE)
    monkeypatch.setenv(profiles.PROFILES_ENV, str(path))
    return path


def test_builtin_attacks_in_matrix_order_with_kinds_and_schemas():
    assert registry.names() == ("fgsm", "bim", "boundary", "pgd", "deepfool", "cw", "hsj", "square")
    kinds = {name: registry.attack_class(name).kind for name in registry.names()}
    assert kinds == {"fgsm": "gradient", "bim": "gradient", "boundary": "decision", "pgd": "gradient",
                     "deepfool": "gradient", "cw": "gradient", "hsj": "decision", "square": "score"}
    for name in registry.names():
        cls = registry.attack_class(name)
        assert cls.title and all(isinstance(p, Param) and p.doc for p in cls.params.values()), name
    with pytest.raises(registry.UnknownAttack, match=r"unknown attack 'pgdd'; registered attacks are \['fgsm'"):
        registry.make_attack("pgdd", {})
    with pytest.raises(AttackError, match=r"pgd is missing \['eps'\]"):
        registry.make_attack("pgd", {})


def _attack(**attrs):
    def run(self, model, images01, labels, seed):
        return None

    return type("Broken", (Attack,), {"name": "broken", "kind": "score", "params": {}, "run": run, **attrs})


@pytest.mark.parametrize("attrs, message", [
    ({"name": "my-attack"}, "name must be lowercase letters, digits and '_'"),
    ({"name": ""}, "name must be"),
    ({"kind": "white-box"}, "kind must be one of ('gradient', 'decision', 'score'), got 'white-box'"),
    ({"params": {"eps": 0.1}}, "params must be a dict of parameter name -> harness.attack.params.Param"),
    ({"run": Attack.run}, "must implement run(model, images01, labels, seed)"),
    ({"name": "fgsm"}, "an attack named 'fgsm' is already registered"),
])
def test_register_refuses_a_class_that_does_not_declare_what_the_suite_needs(attrs, message):
    with pytest.raises(TypeError) as caught:
        registry.register(_attack(**attrs))
    assert message in str(caught.value)
    assert registry.names() == ("fgsm", "bim", "boundary", "pgd", "deepfool", "cw", "hsj", "square")


def test_a_default_outside_its_own_schema_is_refused():
    with pytest.raises(ValueError, match="a positive number"):
        Float("x", default=-1.0)


def test_matrix_follows_the_profile_and_refuses_unknown_attacks():
    default = profiles.load_profile("default")
    ids = [c.id for c in matrix(("pc",), default.attack_names)]
    assert len(ids) == 18 and {c.split("-")[2] for c in ids} == {"fgsm", "bim", "boundary"}
    assert [c.attack for c in matrix(("pc",), ("hsj", "fgsm"))][:2] == ["fgsm", "hsj"]  # registry order
    extended = profiles.load_profile("extended")
    # 7 transfer attacks on pc (6 models) and mobile (6 models x 2 quantizations, PyTorch's on
    # 3 runtimes: 24 deployments); 3 direct attacks on mobile only
    assert len(matrix(("pc", "mobile"), extended.attack_names)) == 7 * (6 + 24) + 3 * 24
    assert list(Study.fingerprint_of(extended, 300)["attacks"]) == list(extended.attack_names)
    with pytest.raises(registry.UnknownAttack, match="unknown attack 'nope'"):
        matrix(("pc",), ("fgsm", "nope"))


def test_a_registered_attack_with_a_profile_entry_joins_matrix_fingerprint_and_generation(
        noise_attack, noise_profiles, mini_models, fashion_test, tmp_path):
    from harness.attack.generate import generate_set
    from harness.cache import ArtifactCache

    profile = profiles.load_profile("p")  # via $HARNESS_PROFILES
    assert profile.attack_names == ("fgsm", "noise")  # registry order: built-ins first
    ids = [c.id for c in matrix(("pc",), profile.attack_names)]
    assert "pytorch-resnet50-noise-float-pc" in ids and len(ids) == 12
    assert Study.fingerprint_of(profile, 8)["attacks"]["noise"] == {"eps": 0.2}
    model = mini_models[("pytorch", "mobilenet_v2")]
    samples = fashion_test.select(fashion_test.ids[:8])
    adv = generate_set(model, "noise", profile, samples, ArtifactCache(tmp_path / "cache", log=lambda m: None),
                       log=lambda m: None)
    assert adv.sidecar["attack"] == "noise" and adv.sidecar["params"] == {"eps": 0.2}
    assert adv.column("linf").max() <= 0.2 + 0.5 / 255 + 1e-9 and adv.column("linf").max() > 0.1
    from harness.report.records import ATTACK_NAMES

    assert ATTACK_NAMES["noise"] == "Uniform noise"


def test_a_registered_attack_with_a_profile_entry_appears_in_the_pytest_matrix_ids(tmp_path):
    """The whole pytest layer (options, parametrization, markers) in a fresh process: the attack is
    registered by a plugin module, the profile comes from $HARNESS_PROFILES; nothing else changes."""
    plugin = tmp_path / "noise_plugin.py"
    plugin.write_text(NOISE_SOURCE + "\nregistry.register(UniformNoise)\n")
    (tmp_path / "profiles.toml").write_text(PROFILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
           profiles.PROFILES_ENV: str(tmp_path / "profiles.toml")}
    cmd = [sys.executable, "-m", "pytest", "-p", "noise_plugin", "-p", "no:cacheprovider", "--collect-only", "-q",
           "-m", "pc", "--profile", "p", "tests/test_matrix.py"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "::" in line]
    attacks = {i.split("-")[2] for i in ids}
    assert attacks == {"fgsm", "noise"}, attacks
    assert "tensorflow-inception_v3-noise-int8-arm64" in ids and "pytorch-resnet50-noise-float-pc" in ids
    # pc float (6 models); mobile and arm64 float+int8 on 12 deployments (PyTorch's on 3 runtimes)
    assert len(ids) == len(set(ids)) == 2 * (6 + 24 + 24)
    assert ids.index("pytorch-resnet50-fgsm-float-pc") < ids.index("pytorch-resnet50-noise-float-pc")
    # without the plugin the same profile names an attack nobody registered: a usage error saying so
    env["PYTHONPATH"] = str(REPO)
    cmd.remove("noise_plugin")
    cmd.remove("-p")
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 4, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{tmp_path / 'profiles.toml'} [p]: unknown attack 'noise'; registered attacks are" in result.stderr

