"""The mini zoo's TensorFlow and PyTorch twins are one network: same layers, shapes, parameters, function."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from harness.frameworks import import_torch
from harness.zoo import mini, port, registry
from harness.zoo.base import MODELS, ZooError

torch = import_torch()


def _randomised_torch(name: str, seed: int = 0):
    torch.manual_seed(seed)
    module = mini.build("pytorch", name).eval()
    for m in module.modules():  # non-trivial BatchNorm statistics, so BN is really compared
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module


@pytest.mark.parametrize("name", MODELS)
def test_twins_compute_the_same_function(name):
    torch_module = _randomised_torch(name)
    keras_module = mini.build("tensorflow", name)
    copied = port.torch_to_keras(torch_module, keras_module)
    assert copied >= 20
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch_module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(keras_module(x, training=False))
    assert got.shape == expected.shape == (4, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_twins_have_equal_parameter_counts_and_fit_the_size_budget(name):
    torch_module = mini.build("pytorch", name)
    keras_module = mini.build("tensorflow", name)
    torch_params = sum(p.numel() for p in torch_module.parameters())
    keras_params = sum(int(np.prod(v.shape)) for v in keras_module.trainable_weights)
    assert torch_params == keras_params
    assert 4 * torch_params <= 4_000_000, "float weights must stay under 4 MB"


@pytest.mark.parametrize("name", MODELS)
def test_defining_blocks_are_present(name):
    keras_module = mini.build("tensorflow", name)
    kinds = {type(layer).__name__ for layer in keras_module.layers}
    defining = {"mobilenet_v2": {"DepthwiseConv2D", "Add"}, "resnet50": {"Add"},
                "inception_v3": {"Concatenate", "MaxPooling2D"}}[name]
    assert defining <= kinds


@pytest.mark.parametrize("name", MODELS)
def test_fuse_model_prepares_for_static_quantization(name):
    module = copy.deepcopy(mini.build("pytorch", name)).eval()
    module.fuse_model()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()), "a BatchNorm was not fused"
    fused = [m for m in module.modules() if type(m).__name__ in ("ConvReLU2d", "Conv2d")]
    assert fused
    torch.backends.quantized.engine = "qnnpack"
    module.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
    torch.ao.quantization.prepare(module, inplace=True)
    module(torch.rand(4, 3, 32, 32))
    torch.ao.quantization.convert(module, inplace=True)
    out = module(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and out.dtype == torch.float32


def test_port_refuses_a_different_architecture():
    with pytest.raises(port.PortError, match="has no Keras layer named"):
        port.torch_to_keras(mini.build("pytorch", "resnet50"), mini.build("tensorflow", "inception_v3"))


def test_unknown_names_are_clear_errors():
    with pytest.raises(ZooError, match=r"unknown zoo 'tiny'; expected one of \('mini', 'imagenet', 'real'\)"):
        registry.load("tiny", "pytorch", "resnet50")
    with pytest.raises(ZooError, match="unknown mini zoo model 'vgg16'"):
        mini.spec("pytorch", "vgg16")
    with pytest.raises(ZooError, match="unknown framework 'jax'"):
        mini.spec("jax", "resnet50")


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_weights_of_another_architecture_are_refused(tmp_path, framework):
    (tmp_path / framework).mkdir()
    src = mini.weights_path(framework, "resnet50")
    wrong = mini.weights_path(framework, "mobilenet_v2", tmp_path)
    wrong.write_bytes(src.read_bytes())
    with pytest.raises(ZooError, match=rf"{wrong.name}: weights do not match"):
        mini.load(framework, "mobilenet_v2", tmp_path)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_corrupt_or_missing_weights_are_refused(tmp_path, framework):
    (tmp_path / framework).mkdir()
    path = mini.weights_path(framework, "resnet50", tmp_path)
    with pytest.raises(ZooError, match="weights missing; run `python -m harness.zoo.train`"):
        mini.load(framework, "resnet50", tmp_path)
    path.write_bytes(mini.weights_path(framework, "resnet50").read_bytes()[:5000])
    with pytest.raises(ZooError, match=path.name):
        mini.load(framework, "resnet50", tmp_path)


def test_committed_weights_must_match_the_training_record(tmp_path):
    import json
    import shutil

    shutil.copytree(mini.WEIGHTS_DIR, tmp_path / "mini")
    record = json.loads((tmp_path / "mini" / "recipe.json").read_text())
    record["models"]["mini/pytorch/resnet50"]["sha256"] = "f" * 64
    (tmp_path / "mini" / "recipe.json").write_text(json.dumps(record))
    with pytest.raises(ZooError, match="differs from recipe.json"):
        mini.load("pytorch", "resnet50", tmp_path / "mini")
