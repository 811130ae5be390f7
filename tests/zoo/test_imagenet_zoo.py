"""The ``imagenet`` zoo without its real weights: builders, cache paths and loading code.

The real weights are not on this machine, so the loading code is exercised with
random-weight files written where each framework's cache keeps the real ones, and
checked against the framework's own loader: torchvision's builder, pointed at the same
``TORCH_HOME``, must read the file this zoo reads and give the same outputs; Keras'
application builders must ask ``get_file`` for exactly the file names and hashes this
zoo looks for. Every test points the caches at ``tmp_path``, so none depends on (or
writes to) the real home, and downloads are made to fail loudly.
"""

import numpy as np
import pytest

import harness  # noqa: F401  (installs the framework import guard first)
from harness.data.preprocessing import normalization_for
from harness.frameworks import import_keras, import_torch
from harness.zoo import imagenet as zoo
from harness.zoo.base import MODELS, WeightsUnavailable, ZooError
from harness.zoo.frameworks import ADAPTERS


EXPECTED_FILES = {
    ("pytorch", "mobilenet_v2"): "mobilenet_v2-b0353104.pth",
    ("pytorch", "resnet50"): "resnet50-0676ba61.pth",
    ("pytorch", "inception_v3"): "inception_v3_google-0cc3c7bd.pth",
    ("tensorflow", "mobilenet_v2"): "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
    ("tensorflow", "resnet50"): "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    ("tensorflow", "inception_v3"): "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
}
ALL = sorted(EXPECTED_FILES)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Both frameworks' caches under tmp_path, and any download attempt an error."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    torch = import_torch()

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return {"pytorch": tmp_path / "torch" / "hub" / "checkpoints", "tensorflow": tmp_path / "keras" / "models"}


def one_image(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)


# --- specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framework,name", ALL)
def test_spec(framework, name):
    s = zoo.spec(framework, name)
    assert (s.zoo, s.framework, s.name, s.num_classes) == ("imagenet", framework, name, 1000)
    assert s.input_size == (299 if name == "inception_v3" else 224)
    assert s.normalization is normalization_for(framework, name)
    assert zoo.input_geometry(name).crop == s.input_size
    assert s.id == f"imagenet/{framework}/{name}"


def test_unknown_choices_are_zoo_errors():
    with pytest.raises(ZooError, match="unknown framework 'jax'"):
        zoo.spec("jax", "resnet50")
    with pytest.raises(ZooError, match="unknown imagenet zoo model 'vgg16'"):
        zoo.build("pytorch", "vgg16")
    with pytest.raises(ZooError, match="unknown imagenet zoo model 'vgg16'"):
        zoo.load("tensorflow", "vgg16")


# --- builders ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_pytorch_builder_is_the_quantizable_float_model(name):
    from torchvision.models import quantization

    module = zoo.build("pytorch", name)
    expected = {"mobilenet_v2": quantization.QuantizableMobileNetV2, "resnet50": quantization.QuantizableResNet,
                "inception_v3": quantization.QuantizableInception3}[name]
    assert type(module) is expected
    assert hasattr(module, "fuse_model") and not module.training
    assert not any(p.is_quantized for p in module.parameters())
    s = zoo.spec("pytorch", name)
    x = s.normalization(one_image(s.input_size))
    assert x.shape == (1, 3, s.input_size, s.input_size)
    out = ADAPTERS["pytorch"].forward(module)(x)
    assert out.shape == (1, 1000) and np.isfinite(out).all()


def test_pytorch_inception_transforms_its_input_and_has_no_aux_head():
    module = zoo.build("pytorch", "inception_v3")
    assert module.transform_input is True
    assert module.aux_logits is False and module.AuxLogits is None


@pytest.mark.parametrize("name", MODELS)
def test_keras_builder_outputs_logits(name):
    module = zoo.build("tensorflow", name)
    s = zoo.spec("tensorflow", name)
    assert tuple(module.input_shape) == (None, s.input_size, s.input_size, 3)
    assert tuple(module.output_shape) == (None, 1000)
    assert module.layers[-1].get_config()["activation"] == "linear"  # no softmax: logits
    out = ADAPTERS["tensorflow"].forward(module)(s.normalization(one_image(s.input_size)))
    assert out.shape == (1, 1000) and np.isfinite(out).all()
    assert not np.isclose(out.sum(), 1.0)


# --- where the weights are looked for ----------------------------------------------------


def test_cache_dirs_follow_torch_home_and_keras_home(caches):
    assert zoo.cache_dir("pytorch") == caches["pytorch"]
    assert zoo.cache_dir("tensorflow") == caches["tensorflow"]


@pytest.mark.parametrize("framework,name", ALL)
def test_weights_file_names(caches, framework, name):
    assert zoo.weights_path(framework, name) == caches[framework] / EXPECTED_FILES[(framework, name)]


@pytest.mark.parametrize("framework,name", ALL)
def test_missing_weights_name_the_file_the_folder_and_the_source(caches, framework, name):
    weights = zoo.pretrained_weights(framework, name)
    with pytest.raises(WeightsUnavailable) as raised:
        zoo.load(framework, name)
    message = str(raised.value)
    assert str(caches[framework] / EXPECTED_FILES[(framework, name)]) in message
    assert f"Put {EXPECTED_FILES[(framework, name)]} in {caches[framework]}" in message
    assert weights.url in message and weights.url.endswith(EXPECTED_FILES[(framework, name)])
    assert ("TORCH_HOME" if framework == "pytorch" else "KERAS_HOME") in message


def test_directory_overrides_the_cache(tmp_path, caches):
    with pytest.raises(WeightsUnavailable, match=str(tmp_path / "elsewhere" / "resnet50-0676ba61.pth")):
        zoo.load("pytorch", "resnet50", directory=tmp_path / "elsewhere")


@pytest.mark.imagenet
@pytest.mark.parametrize("name", MODELS)
def test_keras_applications_ask_for_the_same_file(name, monkeypatch):
    """Build each Keras application with weights='imagenet' and capture its get_file call."""
    keras = import_keras()
    from keras.src.utils import file_utils

    class Asked(Exception):
        pass

    def capture(fname, origin=None, **kwargs):
        raise Asked(fname, origin, kwargs.get("file_hash"), kwargs.get("cache_subdir"))

    monkeypatch.setattr(file_utils, "get_file", capture)
    with pytest.raises(Asked) as asked:
        getattr(keras.applications, zoo.KERAS_BUILDERS[name])(weights="imagenet")
    fname, origin, file_hash, cache_subdir = asked.value.args
    weights = zoo.pretrained_weights("tensorflow", name)
    assert (fname, origin, file_hash, cache_subdir) == (weights.file_name, weights.url, weights.md5, "models")


# --- loading --------------------------------------------------------------------------------


def test_corrupt_pytorch_weights_fail_the_hash_check(caches):
    path = caches["pytorch"] / EXPECTED_FILES[("pytorch", "resnet50")]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match=r"SHA-256 .* does not start with 0676ba61"):
        zoo.load("pytorch", "resnet50")
    with pytest.raises(ZooError, match="not a readable PyTorch state dict"):
        zoo.load("pytorch", "resnet50", check_hash=False)


def test_corrupt_keras_weights_fail_the_md5_check(caches):
    path = caches["tensorflow"] / EXPECTED_FILES[("tensorflow", "inception_v3")]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(ZooError, match=r"MD5 .* differs from 9a0d58056eeedaa3f26cb7ebd46da564"):
        zoo.load("tensorflow", "inception_v3")


def test_keras_weights_without_a_pinned_hash_still_fail_on_a_bad_file(caches):
    path = caches["tensorflow"] / EXPECTED_FILES[("tensorflow", "mobilenet_v2")]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(ZooError, match=f"{path.name}: weights do not match imagenet/tensorflow/mobilenet_v2"):
        zoo.load("tensorflow", "mobilenet_v2")


def test_pytorch_weights_of_another_architecture_are_rejected(caches):
    torch = import_torch()
    path = caches["pytorch"] / EXPECTED_FILES[("pytorch", "mobilenet_v2")]
    path.parent.mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ZooError, match="weights do not match imagenet/pytorch/mobilenet_v2"):
        zoo.load("pytorch", "mobilenet_v2", check_hash=False)


@pytest.mark.imagenet
# torchvision's quantizable InceptionV3 builder leaves init_weights unset when it loads weights
@pytest.mark.filterwarnings("ignore:The default weight initialization of inception_v3:FutureWarning")
@pytest.mark.parametrize("name", ["mobilenet_v2", pytest.param("inception_v3", marks=pytest.mark.slow)])
def test_pytorch_load_reads_what_torchvision_reads(caches, name):
    """Random weights in the real file name; our load() and torchvision's builder agree."""
    torch = import_torch()
    from torchvision.models import get_weight, quantization

    # the file as published: for InceptionV3 it includes the auxiliary head
    source = getattr(quantization, name)(weights=None, quantize=False, **(
        {"aux_logits": True, "transform_input": True, "init_weights": False} if name == "inception_v3" else {}))
    path = caches["pytorch"] / EXPECTED_FILES[("pytorch", name)]
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)

    loaded = zoo.load("pytorch", name, check_hash=False)
    assert loaded.weights_path == path and len(loaded.weights_digest) == 64
    reference = getattr(quantization, name)(weights=get_weight(zoo.TORCH_WEIGHTS[name]), quantize=False).eval()
    image = one_image(loaded.spec.input_size, seed=1)
    with torch.inference_mode():
        expected = reference(torch.from_numpy(loaded.spec.normalization(image))).numpy()
    np.testing.assert_allclose(loaded.predict_logits(image), expected, rtol=1e-5, atol=1e-5)
    assert loaded.predict(image).shape == (1,)


@pytest.mark.imagenet
def test_keras_load_reads_the_legacy_h5_file(caches):
    """Random weights written in Keras' legacy HDF5 format under the real file name."""
    import h5py

    keras = import_keras()
    from keras.src.legacy.saving import legacy_h5_format

    s = zoo.spec("tensorflow", "mobilenet_v2")
    source = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
    path = caches["tensorflow"] / EXPECTED_FILES[("tensorflow", "mobilenet_v2")]
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, source)

    loaded = zoo.load("tensorflow", "mobilenet_v2")  # Keras pins no hash for this file
    image = one_image(s.input_size, seed=2)
    expected = np.asarray(source(s.normalization(image), training=False))
    np.testing.assert_allclose(loaded.predict_logits(image), expected, rtol=1e-5, atol=1e-5)
