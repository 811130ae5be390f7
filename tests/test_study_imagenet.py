"""The imagenet zoo's study end to end, on the paper's full-size architectures.

The published weights and ImageNet are not on this machine, so the test makes both:
every model gets seeded random weights with its classifier zeroed and biased to one class
(random full-size networks have unbounded features, so only a zero classifier makes them
all agree),
written under the real file names into TORCH_HOME and KERAS_HOME (the caches the zoo
reads, in each framework's own format), and a validation folder of JPEGs of that class
is written in torchvision's layout. The study then runs as it would on the real thing:
the real loading code, selection with each model at its Table 1 geometry, calibration
from the same folder, conversion, Foolbox, the mobile interpreters. Only the hash
check is off, because random weights cannot have the published hashes (that check has
its own tests in tests/zoo/test_imagenet_zoo.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.data import sources
from harness.frameworks import import_keras, import_torch
from harness.study import Configuration, Study
from harness.zoo import imagenet as zoo
from harness.zoo import registry
from tests.data.test_sources import write_imagenet_folder

pytestmark = [pytest.mark.slow, pytest.mark.imagenet]

CLASS = 207  # every model is made to answer this class, so every image is "classified correctly"


def write_biased_weights(framework: str, name: str, path) -> None:
    """Seeded random weights, classifier zeroed and biased to CLASS, in the published format."""
    if framework == "pytorch":
        torch = import_torch()
        torch.manual_seed(0)
        module = zoo.build(framework, name)
        head = module.classifier[1] if name == "mobilenet_v2" else module.fc
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[CLASS] = 10.0
        torch.save(module.state_dict(), path)
    else:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        import_keras().utils.set_random_seed(0)
        module = zoo.build(framework, name)
        head = module.layers[-1]
        kernel, bias = head.get_weights()
        bias[:] = 0.0
        bias[CLASS] = 10.0
        head.set_weights([np.zeros_like(kernel), bias])
        with h5py.File(path, "w") as fh:
            legacy_h5_format.save_weights_to_hdf5_group(fh, module)


@pytest.fixture(scope="module")
def imagenet_machine(tmp_path_factory):
    """TORCH_HOME and KERAS_HOME holding all six weight files, and an ImageNet folder."""
    home = tmp_path_factory.mktemp("imagenet-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home / "torch"))
        mp.setenv("KERAS_HOME", str(home / "keras"))
        assert len(registry.missing_weights("imagenet")) == 6
        for framework, name in registry.combinations("imagenet"):
            path = zoo.weights_path(framework, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_biased_weights(framework, name, path)
        assert registry.missing_weights("imagenet") == []
        mp.setattr(zoo, "_check_integrity", lambda *args: None)
        folder = write_imagenet_folder(home / "val", {i: CLASS for i in range(1, 9)})
        yield folder


def test_the_imagenet_study_runs_the_paper_architectures_end_to_end(imagenet_machine, tmp_path):
    profile = dataclasses.replace(load_profile("paper"), samples=2, calibration=2, attack_batch_size=2)
    study = Study("imagenet", profile, ArtifactCache(tmp_path / "cache", log=lambda m: None), log=lambda m: None,
                  source=sources.source_for("imagenet", imagenet_machine))
    try:
        selection = study.selection
        assert (selection.dataset, selection.split, selection.candidates, selection.pool_size) == ("imagenet", "val", 8, 8)
        assert study.evaluation("tensorflow", "resnet50").images.shape == (2, 224, 224, 3)
        assert study.evaluation("pytorch", "inception_v3").images.shape == (2, 299, 299, 3)
        calibration = study.calibration("pytorch", "mobilenet_v2")
        assert len(calibration) == 2 and not set(calibration.ids) & set(selection.ids)

        configurations = ["pytorch-mobilenet_v2-fgsm-float-pc", "pytorch-inception_v3-fgsm-float-mobile",
                          "pytorch-resnet50-fgsm-int8-mobile",
                          "tensorflow-mobilenet_v2-fgsm-int8-mobile", "tensorflow-inception_v3-fgsm-float-mobile"]
        for config_id in configurations:
            record = study.evaluate(Configuration.parse(config_id))
            assert record["zoo"] == "imagenet" and record["n_samples"] == 2, config_id
            assert record["clean_accuracy"] == 1.0, config_id
            assert record["model_bytes"] > 3_000_000, config_id  # full-size models, not the mini ones
            assert 0.0 <= record["success_rate"] <= 1.0 and len(record["per_sample_success"]) == 2
            if record["quantization"] == "float":
                assert record["agreement_with_pc"] == 1.0, config_id
        adv = study.adversarial_set("tensorflow", "inception_v3", "fgsm")
        assert adv.images.shape == (2, 299, 299, 3) and adv.sidecar["model"] == "imagenet/tensorflow/inception_v3"
        assert np.all(adv.column("linf") <= profile.attack_params("fgsm")["eps"] + 0.5 / 255 + 1e-9)
    finally:
        study.close()
