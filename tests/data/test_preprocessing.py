"""The paper's preprocessing (Table 1), checked against hand-computed values.

Normalisation is checked pixel by pixel against the formulas of the paper's Table 1,
and its Foolbox form against a NumPy emulation of Foolbox 3's preprocessing
(``x[flip] - mean) / std`` along ``axis``), so an attack on [0, 1] images sees the same
model input as inference does. Geometry is checked by property tests and against
torchvision's own Resize + CenterCrop, whose rounding it claims to copy.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import harness  # noqa: F401  (installs the framework import guard first)
from harness.data.dataset import DataError
from harness.data.preprocessing import (
    IMAGENET_GEOMETRY, TF_CAFFE, TF_INCEPTION, TORCH_IMAGENET, Geometry, Normalization, center_crop, crop_box,
    normalization_for, resize_shorter_side, resized_size,
)
from harness.frameworks import import_torch


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def random_images(n=2, height=5, width=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def image_with_pixel(rgb, height=3, width=4, at=(1, 2)):
    images = np.zeros((1, height, width, 3), np.uint8)
    images[0, at[0], at[1]] = rgb
    return images


# --- normalisation -----------------------------------------------------------------------


def test_torch_normalization_divides_by_255_then_standardises_in_nchw():
    images = random_images()
    out = TORCH_IMAGENET(images)
    expected = ((images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)
    assert out.dtype == np.float32
    assert out.shape == (2, 3, 5, 7)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_torch_normalization_one_pixel_by_hand():
    out = TORCH_IMAGENET(image_with_pixel((255, 0, 128)))
    assert out[0, :, 1, 2] == pytest.approx(
        [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225], rel=1e-5)
    # an untouched (black) pixel: -mean/std in each channel
    assert out[0, :, 0, 0] == pytest.approx([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rel=1e-5)


@pytest.mark.parametrize("model", ["mobilenet_v2", "inception_v3"])
def test_tf_mobilenet_and_inception_scale_to_minus_one_one(model):
    normalization = normalization_for("tensorflow", model)
    images = random_images()
    out = normalization(images)
    assert out.shape == images.shape  # NHWC, RGB: no reordering
    np.testing.assert_allclose(out, (images.astype(np.float64) - 127.5) / 127.5, rtol=1e-6, atol=1e-7)
    edges = normalization(np.array([[[[0, 255, 127]]]], np.uint8))[0, 0, 0]
    assert edges == pytest.approx([-1.0, 1.0, -0.5 / 127.5], abs=1e-7)


def test_tf_resnet50_flips_to_bgr_and_subtracts_caffe_means():
    normalization = normalization_for("tensorflow", "resnet50")
    images = random_images()
    out = normalization(images)
    assert out.shape == images.shape
    np.testing.assert_allclose(out, images[..., ::-1].astype(np.float64) - CAFFE_BGR_MEAN, rtol=1e-6, atol=1e-4)
    # red (R=200) lands in the last channel, minus the red mean 123.68
    pixel = normalization(image_with_pixel((200, 10, 50)))[0, 1, 2]
    assert pixel == pytest.approx([50 - 103.939, 10 - 116.779, 200 - 123.68], abs=1e-4)


@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet50", "inception_v3"])
def test_table1_assignment(model):
    assert normalization_for("pytorch", model) is TORCH_IMAGENET
    expected_tf = TF_CAFFE if model == "resnet50" else TF_INCEPTION
    assert normalization_for("tensorflow", model) is expected_tf


def test_unknown_framework_or_model_is_an_error():
    with pytest.raises(ValueError, match="no preprocessing"):
        normalization_for("jax", "resnet50")
    with pytest.raises(ValueError, match="no preprocessing"):
        normalization_for("pytorch", "vgg16")


def foolbox_preprocess(x01: np.ndarray, spec: dict) -> np.ndarray:
    """Foolbox 3's ``_process_preprocessing`` + ``apply``, in NumPy (no foolbox import)."""
    axis = spec.get("axis")
    mean = np.asarray(spec["mean"], np.float64)
    std = np.asarray(spec["std"], np.float64)
    if axis is not None:  # put the channel values on ``axis`` and broadcast the rest
        shape = (-1,) + (1,) * (-axis - 1)
        mean, std = mean.reshape(shape), std.reshape(shape)
    x = np.asarray(x01, np.float64)
    if spec.get("flip_axis") is not None:
        x = np.flip(x, axis=spec["flip_axis"])
    return (x - mean) / std


@pytest.mark.parametrize("normalization", [TORCH_IMAGENET, TF_INCEPTION, TF_CAFFE], ids=lambda n: n.name)
def test_foolbox_preprocessing_on_unit_images_matches_the_numpy_path(normalization):
    images = random_images(n=3, height=4, width=6, seed=1)
    x01 = images / 255.0
    if normalization.layout == "NCHW":
        x01 = x01.transpose(0, 3, 1, 2)
    via_foolbox = foolbox_preprocess(x01, normalization.foolbox())
    scale = np.abs(normalization(images)).max()
    np.testing.assert_allclose(via_foolbox, normalization(images), rtol=1e-5, atol=1e-5 * scale)


def test_foolbox_spec_flips_only_for_bgr():
    assert "flip_axis" not in TORCH_IMAGENET.foolbox()
    assert "flip_axis" not in TF_INCEPTION.foolbox()
    assert TF_CAFFE.foolbox()["flip_axis"] == TF_CAFFE.foolbox()["axis"] == -1
    assert TORCH_IMAGENET.foolbox()["axis"] == -3


def test_normalization_rejects_non_uint8_and_wrong_shapes():
    with pytest.raises(DataError, match="uint8"):
        TORCH_IMAGENET(random_images().astype(np.float32))
    with pytest.raises(DataError, match=r"\(N, H, W, 3\)"):
        TORCH_IMAGENET(np.zeros((2, 5, 7), np.uint8))
    with pytest.raises(ValueError, match="channel_order"):
        Normalization("bad", 1.0, (0,) * 3, (1,) * 3, "GBR")


# --- geometry ----------------------------------------------------------------------------

sides = st.integers(min_value=1, max_value=2000)


@given(width=sides, height=sides, shorter=st.integers(1, 600))
def test_resized_shorter_side_is_the_target_and_aspect_is_kept(width, height, shorter):
    new_width, new_height = resized_size(width, height, shorter)
    if width <= height:
        assert new_width == shorter
        new_long, exact = new_height, shorter * height / width
    else:
        assert new_height == shorter
        new_long, exact = new_width, shorter * width / height
    # the long side is the exactly scaled length truncated, so the aspect ratio holds to a pixel
    assert exact - 1 < new_long <= exact
    assert new_long >= shorter


@given(width=st.integers(1, 400), height=st.integers(1, 400), shorter=st.integers(1, 300))
@settings(max_examples=40, deadline=None)
def test_resize_shorter_side_on_a_real_image(width, height, shorter):
    image = Image.new("RGB", (width, height), (10, 20, 30))
    resized = resize_shorter_side(image, shorter)
    assert resized.size == resized_size(width, height, shorter)
    assert min(resized.size) == shorter


@given(width=st.integers(1, 3000), height=st.integers(1, 3000), crop=st.integers(1, 3000))
def test_crop_box_is_crop_square_and_centred(width, height, crop):
    if crop > width or crop > height:
        with pytest.raises(DataError, match="cannot center-crop"):
            crop_box(width, height, crop)
        return
    left, top, right, bottom = crop_box(width, height, crop)
    assert (right - left, bottom - top) == (crop, crop)
    assert 0 <= left and right <= width and 0 <= top and bottom <= height
    assert abs(left - (width - right)) <= 1
    assert abs(top - (height - bottom)) <= 1


geometries = st.integers(8, 320).flatmap(lambda resize: st.tuples(st.just(resize), st.integers(1, resize)))


@given(width=st.integers(1, 500), height=st.integers(1, 500), geometry=geometries)
@settings(max_examples=40, deadline=None)
def test_geometry_output_is_exactly_crop_by_crop_rgb(width, height, geometry):
    resize, crop = geometry
    out = Geometry(resize, crop)(Image.new("L", (width, height), 77))
    assert out.shape == (crop, crop, 3)
    assert out.dtype == np.uint8
    assert (out == 77).all()  # a uniform grey image stays uniform through resize and crop


@given(width=st.integers(12, 400), height=st.integers(12, 400), resize=st.integers(30, 320), data=st.data())
@settings(max_examples=40, deadline=None)
def test_resize_and_crop_keep_the_centre_pixel(width, height, resize, data):
    crop = data.draw(st.integers(1, resize))
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[...] = (0, 0, 255)  # blue surround
    pixels[height // 3: height - height // 3, width // 3: width - width // 3] = (255, 0, 0)  # red middle third
    out = Geometry(resize, crop)(Image.fromarray(pixels))
    assert tuple(out[crop // 2, crop // 2]) == (255, 0, 0)


def test_crop_without_resize_is_the_centred_slice():
    pixels = np.arange(9 * 12 * 3, dtype=np.uint32).reshape(9, 12, 3).astype(np.uint8)
    image = Image.fromarray(pixels)
    assert resize_shorter_side(image, 9) is image  # already the right size: untouched
    out = center_crop(image, 5)
    # (12 - 5) / 2 = 3.5 rounds to 4 (banker's rounding), (9 - 5) / 2 = 2
    np.testing.assert_array_equal(out, pixels[2:7, 4:9])


@pytest.mark.parametrize("model,resize,crop", [("mobilenet_v2", 256, 224), ("resnet50", 256, 224),
                                               ("inception_v3", 299, 299)])
def test_paper_geometry(model, resize, crop):
    assert IMAGENET_GEOMETRY[model] == Geometry(resize, crop)


def test_geometry_rejects_crop_larger_than_resize():
    with pytest.raises(ValueError, match="crop"):
        Geometry(224, 256)


@given(width=st.integers(1, 300), height=st.integers(1, 300), geometry=geometries, seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_geometry_matches_torchvision_resize_and_center_crop(width, height, geometry, seed):
    import_torch()
    from torchvision import transforms

    resize, crop = geometry
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    reference = transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(crop),
    ])(image)
    np.testing.assert_array_equal(Geometry(resize, crop)(image), np.asarray(reference))
