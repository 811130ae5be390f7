"""Model files with a fixed batch, as third parties write them, on this host's runtimes.

A ``.tflite`` whose input ``shape_signature`` is [1, 32, 32, 3] (or [4, ...]) cannot be resized;
a ``.pte`` exported at a static batch refuses any other; a ``.ptl`` traced with
``x.reshape(1, -1)`` fails on two images. Each runs in chunks of exactly its batch, a short
last chunk padded and its padded rows dropped, so any number of images gives what they give
one by one, bit for bit; ``describe()["batch"]`` says how. Files with a dynamic batch still
run a whole batch in one call.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.runtime import ModelFileError, open_runtime
from tests.runtime import batch_models as bm

COUNTS = (1, 5, 64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixed-batch")
    return {
        "tflite-float-1": bm.write_tflite(d, "float1", 1),
        "tflite-uint8-1": bm.write_tflite(d, "uint8_1", 1, "uint8"),
        "tflite-int8-1": bm.write_tflite(d, "int8_1", 1, "int8"),
        "tflite-float-4": bm.write_tflite(d, "float4", 4),
        "tflite-int8-4": bm.write_tflite(d, "int8_4", 4, "int8"),
        "tflite-float-dynamic": bm.write_tflite(d, "float_dynamic", None),
        "ptl-baked-1": bm.write_ptl(d, "baked1", baked_batch=True),
        "ptl-dynamic": bm.write_ptl(d, "dynamic", baked_batch=False),
        "pte-1": bm.write_pte(d, "static1", 1),
        "pte-3": bm.write_pte(d, "static3", 3),
        "pte-dynamic": bm.write_pte(d, "dynamic", None, max_batch=16),
    }


def runtime(path, fmt_spec=None):
    spec = fmt_spec or (bm.TF_SPEC if path.suffix == ".tflite" else bm.TORCH_SPEC)
    quantization = "int8" if "int8" in path.name or "uint8" in path.name else "float"
    return open_runtime("mobile", artifact=str(path), spec=spec, quantization=quantization)


FIXED = {"tflite-float-1": 1, "tflite-uint8-1": 1, "tflite-int8-1": 1, "tflite-float-4": 4, "tflite-int8-4": 4,
         "ptl-baked-1": 1, "pte-1": 1, "pte-3": 3}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_a_fixed_batch_file_gives_any_batch_what_its_images_give_one_by_one(files, name):
    size = FIXED[name]
    images = bm.images(64)
    with runtime(files[name]) as rt:
        assert rt.describe()["batch"]["mode"] == "fixed" and rt.describe()["batch"]["size"] == size
        single = np.concatenate([rt.predict_logits(images[i:i + 1]) for i in range(len(images))])
        for n in COUNTS:
            before = rt.describe()["batch"]
            got = rt.predict_logits(images[:n], batch_size=n)
            after = rt.describe()["batch"]
            np.testing.assert_array_equal(got, single[:n], err_msg=f"{name}: {n} images")
            assert after["invokes"] - before["invokes"] == -(-n // size)
            assert after["padded_rows"] - before["padded_rows"] == -n % size
        # the study's chunking (64 per call) over a count that is no multiple of the file's batch
        np.testing.assert_array_equal(rt.predict_logits(images[:37], batch_size=10), single[:37])
    assert np.unique(single.argmax(1)).size > 1 or np.ptp(single) > 0  # not a constant model


@pytest.mark.parametrize("name", ["tflite-float-dynamic", "ptl-dynamic", "pte-dynamic"])
def test_a_dynamic_batch_file_still_runs_a_batch_in_one_call(files, name):
    images = bm.images(64)
    with runtime(files[name]) as rt:
        batch = rt.describe()["batch"]
        assert batch["mode"] == "dynamic"
        start = batch["invokes"]
        whole = rt.predict_logits(images, batch_size=64)
        calls = rt.describe()["batch"]["invokes"] - start
        assert calls == (4 if name == "pte-dynamic" else 1)  # the .pte is planned for 16 images
        assert rt.describe()["batch"]["padded_rows"] == 0
        single = np.concatenate([rt.predict_logits(images[i:i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(whole, single, rtol=1e-5, atol=1e-5)


def test_the_fixed_and_dynamic_twins_of_one_keras_model_agree(files):
    images = bm.images(16)
    with runtime(files["tflite-float-1"]) as fixed, runtime(files["tflite-float-dynamic"]) as dynamic:
        np.testing.assert_allclose(fixed.predict_logits(images), dynamic.predict_logits(images), rtol=1e-5, atol=1e-5)


def test_a_file_with_batch_zero_is_a_one_line_error_naming_it(tmp_path):
    path = bm.concrete_tflite(tmp_path, "zero", [0, bm.SIZE, bm.SIZE, 3], 0)
    with pytest.raises(ModelFileError, match=rf"^{path}: input tensor .* has batch 0 \(shape signature "
                                             r"\[0, 32, 32, 3\]\); expected -1 \(any batch\) or a fixed positive batch$"):
        runtime(path)


def test_a_file_whose_output_rows_differ_from_its_batch_is_a_one_line_error_naming_it(tmp_path):
    path = bm.concrete_tflite(tmp_path, "rows", [2, bm.SIZE, bm.SIZE, 3], 1)
    with pytest.raises(ModelFileError, match=rf"^{path}: output tensor .* has 1 rows \(shape \[1, 10\]\) for the "
                                             r"input's fixed batch of 2; expected one row per image$") as info:
        runtime(path)
    assert "\n" not in str(info.value)


def test_a_dynamic_file_whose_output_rows_differ_is_a_one_line_error_naming_it(tmp_path):
    path = bm.concrete_tflite(tmp_path, "rows_dynamic", [None, bm.SIZE, bm.SIZE, 3], 1)
    with runtime(path) as rt, pytest.raises(ModelFileError, match=rf"^{path}: the model returned 1 output rows for "
                                                                   r"a batch of 3; expected one row per image$"):
        rt.predict_logits(bm.images(3))
