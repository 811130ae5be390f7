"""Small PyTorch modules the litert-torch tests hand to the converting child process.

They live in a module of their own that imports only torch, so the child (which unpickles
them and must never import TensorFlow) can import their classes.
"""

from __future__ import annotations

import torch
from torch import nn


class DataDependentBranch(nn.Module):
    """Takes a branch on the value of its input: ``torch.export`` refuses to trace that."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.sum() > 0:
            x = x * 2
        return self.head(x.mean(dim=(2, 3)))


class OneImageAtATime(nn.Module):
    """Flattens its batch into one row: a correct model for one image at a time only, so
    ``torch.export`` refuses a dynamic batch and the ExecuTorch converter falls back to batch 1."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)).reshape(1, -1))
