"""Adversarial generation on the mini zoo: honest rounding, the cache, resumption, bad input."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from harness.attack import pngset
from harness.attack.generate import KIND, generate_set, set_key_parts
from harness.attack.profiles import ProfileError, load_profile
from harness.cache import ArtifactCache, cache_key
from harness.data.dataset import DataError
from harness.frameworks import import_torch
from harness.zoo.base import ModelSpec, ZooModel

SMOKE = load_profile("smoke")


@pytest.fixture(scope="module")
def smoke_samples(fashion_test, mini_models):
    """The first 40 test images every mini model classifies correctly."""
    ok = np.ones(400, bool)
    for model in mini_models.values():
        ok &= model.predict(fashion_test.images[:400]) == fashion_test.labels[:400]
    return fashion_test.select(fashion_test.ids[:400][ok][:SMOKE.samples])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("cache"), log=lambda message: None)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
@pytest.mark.parametrize("attack", ["fgsm", "bim", "boundary"])
def test_sidecar_matches_a_fresh_evaluation_of_the_pngs(mini_models, smoke_samples, cache, framework, attack):
    model = mini_models[(framework, "resnet50")]
    adv = generate_set(model, attack, SMOKE, smoke_samples, cache, log=lambda m: None)
    decoded = np.stack([pngset.decode_png(adv.path / "png" / f"{i}.png") for i in smoke_samples.ids])
    fresh = model.predict(decoded) != smoke_samples.labels
    np.testing.assert_array_equal(adv.column("success_after_rounding"), fresh)
    np.testing.assert_array_equal(adv.ids, smoke_samples.ids)
    assert adv.generation_seconds > 0
    if attack != "boundary":  # L-inf attacks stay inside eps, up to half a grey level of rounding
        assert adv.column("linf").max() <= SMOKE.attack_params(attack)["eps"] + 0.5 / 255 + 1e-9
        assert adv.success_before_rounding > 0.1, "the attack fooled almost nothing: is eps wired in?"
    assert adv.sidecar["model"] == model.spec.id and adv.sidecar["profile"] == "smoke"


def test_second_request_does_no_attack_work(mini_models, smoke_samples, cache):
    model = mini_models[("pytorch", "mobilenet_v2")]
    first = generate_set(model, "fgsm", SMOKE, smoke_samples, cache, log=lambda m: None)
    lines = []
    start = time.perf_counter()
    again = generate_set(model, "fgsm", SMOKE, smoke_samples, cache, log=lines.append)
    assert time.perf_counter() - start < 2.0
    assert lines == [] and again.path == first.path
    np.testing.assert_array_equal(again.images, first.images)


def test_interrupted_generation_resumes_from_its_finished_batches(mini_models, smoke_samples, tmp_path):
    model = mini_models[("pytorch", "inception_v3")]
    cache = ArtifactCache(tmp_path / "c", log=lambda m: None)

    def interrupt_after_first_batch(message):
        if "batch 1/" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_set(model, "bim", SMOKE, smoke_samples, cache, log=interrupt_after_first_batch)
    key = cache_key(KIND, set_key_parts(model, "bim", SMOKE, smoke_samples))
    assert [p.name for p in (tmp_path / "c" / KIND / f".partial-{key}").iterdir()] == ["batch-00000.npz"]
    assert not (tmp_path / "c" / KIND / key).exists(), "a half-written set was published"
    resumed = generate_set(model, "bim", SMOKE, smoke_samples, cache, log=lambda m: None)
    assert resumed.sidecar["batches_resumed"] == 1 and resumed.sidecar["batches"] == 2
    assert not (tmp_path / "c" / KIND / f".partial-{key}").exists()
    straight = generate_set(model, "bim", SMOKE, smoke_samples, ArtifactCache(tmp_path / "d", log=lambda m: None),
                            log=lambda m: None)
    np.testing.assert_array_equal(resumed.images, straight.images)


def test_corrupt_set_is_rebuilt_not_used(mini_models, smoke_samples, tmp_path):
    model = mini_models[("pytorch", "resnet50")]
    cache = ArtifactCache(tmp_path, log=lambda m: None)
    first = generate_set(model, "fgsm", SMOKE, smoke_samples, cache, log=lambda m: None)
    victim = first.path / "png" / f"{smoke_samples.ids[0]}.png"
    victim.write_bytes(victim.read_bytes()[:40])
    lines = []
    again = generate_set(model, "fgsm", SMOKE, smoke_samples, cache, log=lines.append)
    assert any("batch" in line for line in lines), "the corrupt set was not regenerated"
    np.testing.assert_array_equal(again.images, first.images)


def test_boundary_records_samples_whose_start_cannot_be_found(smoke_samples, tmp_path):
    """A real model that can never be fooled (constant logits): every start fails, all retries counted."""
    torch = import_torch()

    class AlwaysTheLabel(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float() + 0 * x.sum()

    one_class = smoke_samples.select(smoke_samples.ids[:6])
    one_class = dataclasses.replace(one_class, labels=np.zeros(6, np.int64))
    from harness.data.preprocessing import TORCH_IMAGENET
    from harness.zoo.frameworks import ADAPTERS

    module = AlwaysTheLabel().eval()
    model = ZooModel(ModelSpec("test", "pytorch", "constant", 32, 10, TORCH_IMAGENET), module, None,
                     "constant-model", ADAPTERS["pytorch"].forward(module))
    profile = dataclasses.replace(SMOKE, attack_batch_size=6)
    adv = generate_set(model, "boundary", profile, one_class, ArtifactCache(tmp_path, log=lambda m: None),
                       log=lambda m: None)
    assert adv.sidecar["init_failed_ids"] == sorted(int(i) for i in one_class.ids)
    assert not adv.column("success_after_rounding").any()
    np.testing.assert_array_equal(adv.images, one_class.images)  # unchanged, not half-attacked


def test_bad_requests_are_clear_errors(mini_models, smoke_samples, fashion_test, cache):
    model = mini_models[("tensorflow", "mobilenet_v2")]
    with pytest.raises(ProfileError, match="profile 'smoke' has no attack 'deepfool'"):
        generate_set(model, "deepfool", SMOKE, smoke_samples, cache)
    with pytest.raises(DataError, match=r"sample ids not in the dataset: \[123456\]"):
        fashion_test.select([123456])
    small = dataclasses.replace(smoke_samples, images=np.ascontiguousarray(smoke_samples.images[:, :28, :28]))
    with pytest.raises(ValueError, match=r"samples are \(28, 28, 3\), the model takes \(32, 32, 3\)"):
        generate_set(model, "fgsm", SMOKE, small, cache)
    assert not list(cache.root.glob(f"{KIND}/.tmp-*")), "a failed request left a half-written set"
