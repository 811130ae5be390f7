"""The committed, trained mini zoo meets its figures: accuracy, size, training time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.zoo import mini, registry

RECORD = json.loads(mini.RECORD.read_text())


@pytest.mark.parametrize("framework,name", registry.combinations("mini"), ids="-".join)
def test_committed_model_reaches_85_percent(mini_models, fashion_test, framework, name):
    model = mini_models[(framework, name)]
    accuracy = float((model.predict(fashion_test.images) == fashion_test.labels).mean())
    assert accuracy >= 0.85, f"{model.spec.id}: {accuracy:.4f} top-1 on the committed test subset"
    # the record is what the README quotes: it must describe these very weights
    recorded = RECORD["models"][model.spec.id]
    assert abs(recorded["test_subset_accuracy"] - accuracy) <= 0.002
    assert recorded["sha256"] == model.weights_digest


@pytest.mark.parametrize("framework,name", registry.combinations("mini"), ids="-".join)
def test_float_weights_are_at_most_4_mb(framework, name):
    assert mini.weights_path(framework, name).stat().st_size <= 4_000_000


def test_training_all_six_took_at_most_30_minutes():
    assert len(RECORD["models"]) == 6
    assert sum(m["train_seconds"] for m in RECORD["models"].values()) <= 30 * 60
    assert RECORD["recipe"]["seed"] == 0 and RECORD["recipe"]["epochs"] >= 1


def test_logits_are_batch_size_independent(mini_models, fashion_test):
    model = mini_models[("pytorch", "inception_v3")]
    images = fashion_test.images[:64]
    np.testing.assert_allclose(model.predict_logits(images, batch_size=7),
                               model.predict_logits(images, batch_size=64), atol=1e-4)


def test_wrong_image_shape_is_a_clear_error(mini_models, fashion_test):
    model = mini_models[("tensorflow", "resnet50")]
    with pytest.raises(ValueError, match=r"expected uint8 images \(N, 32, 32, 3\), found uint8 \(2, 28, 28, 3\)"):
        model.predict_logits(fashion_test.images[:2, 2:30, 2:30])
