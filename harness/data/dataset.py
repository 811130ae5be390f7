"""The one in-memory dataset type every stage passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """A dataset file or image is missing, corrupt or of the wrong shape."""


@dataclass(frozen=True)
class ImageDataset:
    """uint8 RGB images (N, H, W, 3) with int64 labels and stable sample ids.

    ``ids`` are the images' indices in their official split, so the same id names
    the same image whether the data came from the committed subset or the full set.
    """

    name: str
    split: str
    ids: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(
                f"{self.name}/{self.split}: images must be uint8 (N, H, W, 3), "
                f"found {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) != n or len(self.labels) != n:
            raise DataError(
                f"{self.name}/{self.split}: {n} ids but {len(self.images)} images "
                f"and {len(self.labels)} labels"
            )
        if len(np.unique(self.ids)) != n:
            raise DataError(f"{self.name}/{self.split}: sample ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def select(self, ids) -> "ImageDataset":
        """The samples with these ids, in the given order; unknown ids are an error."""
        ids = np.asarray(ids, dtype=np.int64)
        position = {int(i): p for p, i in enumerate(self.ids)}
        missing = [int(i) for i in ids if int(i) not in position]
        if missing:
            raise DataError(
                f"{self.name}/{self.split}: sample ids not in the dataset: {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''} (valid ids: {len(self.ids)} "
                f"between {self.ids.min()} and {self.ids.max()})"
            )
        rows = np.array([position[int(i)] for i in ids], dtype=np.int64)
        return ImageDataset(
            self.name, self.split, ids, self.images[rows], self.labels[rows], self.class_names
        )
