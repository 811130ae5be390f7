"""The paper's preprocessing (Table 1): geometry and each framework's normalisation.

One :class:`Normalization` per model serves every platform of its framework, so the
PC model and its mobile conversion see the same tensors, and the same object gives
Foolbox the equivalent preprocessing for attacks on [0, 1] images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from harness.data.dataset import DataError


@dataclass(frozen=True)
class Normalization:
    """``out = (pixels[channel_order] * scale - mean) / std``, per channel, in ``layout``.

    ``pixels`` are uint8 RGB values 0..255 in NHWC. ``mean`` and ``std`` are given
    in the order of the *output* channels (BGR means for a BGR model).
    """

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"  # or "BGR"
    layout: str = "NHWC"  # or "NCHW"

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be NHWC or NCHW, got {self.layout!r}")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> float32 model input."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"expected uint8 images (N, H, W, 3), found {images.dtype} {images.shape}")
        if images.dtype != np.uint8:
            raise DataError(f"expected uint8 pixels, found {images.dtype}")
        x = images.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x * np.float32(self.scale) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def foolbox(self) -> dict:
        """The same transform for Foolbox, whose inputs are [0, 1] images in ``layout``.

        x01 = pixels / 255, so ``pixels * scale - mean == (x01 - mean / (255 scale)) * 255 scale``.
        """
        k = 255.0 * self.scale
        axis = -3 if self.layout == "NCHW" else -1
        spec = {
            "mean": np.asarray(self.mean, np.float32) / k,
            "std": np.asarray(self.std, np.float32) / k,
            "axis": axis,
        }
        if self.channel_order == "BGR":
            spec["flip_axis"] = axis
        return spec


# Table 1 of the paper.
TORCH_IMAGENET = Normalization(
    "torch-imagenet", 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB", "NCHW"
)
TF_INCEPTION = Normalization("tf-inception", 1.0, (127.5,) * 3, (127.5,) * 3, "RGB", "NHWC")
TF_CAFFE = Normalization("tf-caffe", 1.0, (103.939, 116.779, 123.68), (1.0,) * 3, "BGR", "NHWC")

# Which normalisation each framework uses for each model family (the mini zoo keeps them).
NORMALIZATIONS = {
    ("pytorch", "mobilenet_v2"): TORCH_IMAGENET,
    ("pytorch", "resnet50"): TORCH_IMAGENET,
    ("pytorch", "inception_v3"): TORCH_IMAGENET,
    ("tensorflow", "mobilenet_v2"): TF_INCEPTION,
    ("tensorflow", "resnet50"): TF_CAFFE,
    ("tensorflow", "inception_v3"): TF_INCEPTION,
}


def normalization_for(framework: str, model: str) -> Normalization:
    try:
        return NORMALIZATIONS[(framework, model)]
    except KeyError:
        valid = sorted({f for f, _ in NORMALIZATIONS}), sorted({m for _, m in NORMALIZATIONS})
        raise ValueError(
            f"no preprocessing for framework {framework!r} and model {model!r}; "
            f"frameworks {valid[0]}, models {valid[1]}"
        ) from None


@dataclass(frozen=True)
class Geometry:
    """Resize the shorter side to ``resize``, then center-crop ``crop`` x ``crop``."""

    resize: int
    crop: int

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop {self.crop} must be positive and at most resize {self.resize}")

    def __call__(self, image: Image.Image) -> np.ndarray:
        """A PIL image (any mode) -> uint8 (crop, crop, 3) RGB."""
        return center_crop(resize_shorter_side(image.convert("RGB"), self.resize), self.crop)


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``shorter``, as torchvision computes it."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def resize_shorter_side(image: Image.Image, shorter: int) -> Image.Image:
    size = resized_size(image.width, image.height, shorter)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR)


def crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred ``crop`` square, rounding as torchvision does."""
    if crop > width or crop > height:
        raise DataError(f"cannot center-crop {crop}x{crop} from a {width}x{height} image")
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


def center_crop(image: Image.Image, crop: int) -> np.ndarray:
    return np.asarray(image.crop(crop_box(image.width, image.height, crop)), dtype=np.uint8)


# Table 1: 256 -> 224 for every model but InceptionV3 (299 -> 299).
IMAGENET_GEOMETRY = {
    "mobilenet_v2": Geometry(256, 224),
    "resnet50": Geometry(256, 224),
    "inception_v3": Geometry(299, 299),
}
