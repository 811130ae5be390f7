"""The conformance tests' shared folder: the written corpus, photos and the small profile, made once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance import support
from tests.zoo import byo_support as byo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    # Written by a child process, as a user's own converter run would be; TensorFlow's converter and
    # ExecuTorch's exporter then leave nothing behind in this process.
    subprocess.run([sys.executable, "-c", "import sys; from tests.conformance.writers import write_corpus; "
                    "write_corpus(__import__('pathlib').Path(sys.argv[1]))", str(root / "files")],
                   cwd=REPO, check=True, capture_output=True, timeout=900)
    data = byo.test_images()
    byo.write_class_folders(data.select(data.ids[:6]), root / "photos")  # six photos in class-index folders
    support.write_profile(root)
    return root
