"""Stage 1 of the pipeline: datasets, preprocessing and sample selection."""

from harness.data.dataset import ImageDataset

__all__ = ["ImageDataset"]
