"""Every gate kind proven able to fail: a deliberately degraded deployment of a real mini
model, measured by the study on the real adversarial PNGs, fails the gate that should
catch it, with a message naming flipped sample ids and their PNG paths; the unchanged
deployment passes.

The baseline is proposed from an unchanged run of the same configurations (as
``--write-thresholds`` does), so these tests need no committed file. The degraded
runtime replaces the study's own for one configuration; everything else (samples,
adversarial sets, the PC reference, the gates) is the pipeline's.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.metrics import gates as gating
from harness.runtime import open_runtime
from harness.study import Configuration, Study, _agreement, runtime_format
from harness.zoo import registry

PROFILE = load_profile("default")
PC = Configuration("pytorch", "mobilenet_v2", "fgsm", "float", "pc")
INT8 = Configuration("tensorflow", "mobilenet_v2", "fgsm", "int8", "mobile")
M = 126  # judged as one of a full matrix's configurations


def _quiet(message: str) -> None:
    pass


def _study() -> Study:
    return Study("mini", PROFILE, ArtifactCache(log=_quiet), log=_quiet)


@pytest.fixture(scope="module")
def unchanged():
    """The unchanged run: its records, and the baseline proposed from them."""
    study = _study()
    records = {c: study.evaluate(c) for c in (PC, INT8)}
    baseline = gating.propose(list(records.values()), study.fingerprint(), None, {"pc", "mobile", "arm64"},
                              "mini", PROFILE.name, gating.Policy(), "mutation-test")
    yield study, records, baseline
    study.close()


def _degraded_record(config: Configuration, make_runtime) -> dict:
    """The configuration's record with the study's runtime for it replaced by ``make_runtime(study)``."""
    study = _study()
    try:
        fmt = None if config.platform == "pc" else runtime_format(config.framework, config.runtime)
        study._runtimes[(config.framework, config.model, config.quantization, config.platform, fmt)] = \
            make_runtime(study)
        return study.evaluate(config)
    finally:
        study.close()


def _failed(record, baseline) -> dict:
    return {v.kind: v for v in gating.judge(record, baseline, M) if not v.passed}


def test_an_unchanged_run_passes_every_gate(unchanged):
    study, records, baseline = unchanged
    for config in (PC, INT8):
        again = _study().evaluate(config)  # a second, independent run of the same configuration
        assert again["per_sample_success"] == records[config]["per_sample_success"]
        assert _failed(again, baseline) == {}


def test_noise_on_the_weights_fails_the_regression_gate(unchanged):
    _, _, baseline = unchanged

    def noisy(study):
        import torch

        model = registry.load("mini", PC.framework, PC.model)  # a second copy; the study's stays intact
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in model.module.parameters():
                if parameter.numel() > 1:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * parameter.std() * 0.5)
        return open_runtime("pc", model)

    record = _degraded_record(PC, noisy)
    failed = _failed(record, baseline)
    assert set(failed) == {"regression"}, failed
    text = failed["regression"].describe(PC.id)
    b, c = failed["regression"].numbers["b"], failed["regression"].numbers["c"]
    assert b > c and f"{b} of 300 samples newly fooled, {c} no longer fooled" in text
    first = next(i for i, now, before in zip(record["sample_ids"], record["per_sample_success"],
                                              baseline.entries[PC.id].fooled) if now and not before)
    assert f"newly fooled ids: {first} ({record['adversarial_pngs']}/{first}.png)" in text
    assert (gating.Path(record["adversarial_pngs"]) / f"{first}.png").is_file()


def _with_input_scale(source, target, factor: float) -> int:
    """Copy a LiteRT int8 model with its input's quantization scale multiplied by ``factor``:
    the scale of the tensor the input QUANTIZE op writes, and of every tensor that must share
    it (a PAD keeps its input's scale). Returns how many tensors were changed."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = source.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    graph = model.subgraphs[0]
    first = graph.operators[0]
    assert model.operatorCodes[first.opcodeIndex].builtinCode == schema.BuiltinOperator.QUANTIZE
    scale = float(graph.tensors[first.outputs[0]].quantization.scale[0])
    changed = 0
    for tensor in graph.tensors:
        q = tensor.quantization
        if q is not None and q.scale is not None and len(q.scale) == 1 and float(q.scale[0]) == scale:
            q.scale = [scale * factor]
            changed += 1
    builder = flatbuffers.Builder(len(buf))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())
    return changed


def test_a_wrong_input_scale_in_the_int8_model_fails_the_agreement_gates(unchanged, tmp_path):
    """The int8 model file declares twice its real input scale."""
    _, _, baseline = unchanged

    def wrong_scale(study):
        broken = tmp_path / "mobilenet_v2-int8-wrong-scale.tflite"
        assert _with_input_scale(study.conversion(INT8.framework, INT8.model, "int8").path, broken, 2.0) >= 1
        return open_runtime("mobile", study.model(INT8.framework, INT8.model), broken, quantization="int8")

    record = _degraded_record(INT8, wrong_scale)
    failed = _failed(record, baseline)
    assert {"agreement (clean)", "agreement (adversarial)"} <= set(failed), failed
    text = failed["agreement (adversarial)"].describe(INT8.id)
    assert "disagreeing ids: " in text and f"({record['adversarial_pngs']}/" in text


def test_a_broken_preprocessing_step_fails_the_agreement_gates(unchanged):
    """The app mirrors its images left to right before inference (a front camera's preview
    mirror left in the pipeline)."""
    _, _, baseline = unchanged

    def mirrored(study):
        runtime = open_runtime("mobile", study.model(INT8.framework, INT8.model),
                               study.conversion(INT8.framework, INT8.model, "int8"), quantization="int8")
        infer = runtime._infer
        runtime._infer = lambda batch: infer(np.ascontiguousarray(batch[:, :, ::-1]))
        return runtime

    failed = _failed(_degraded_record(INT8, mirrored), baseline)
    assert "agreement (clean)" in failed, failed
    assert "disagreeing ids: " in failed["agreement (clean)"].text


def test_another_op_resolver_fails_the_bit_exact_gate(unchanged):
    """int8 LiteRT kernels differ by op resolver: the reference kernels against XNNPACK stand
    in for a phone whose runtime computes other integers. The host-vs-ARM comparison and the
    gate are the study's; only the 'ARM' logits come from the other resolver."""
    study, records, _ = unchanged
    model = study.model(INT8.framework, INT8.model)
    artifact = study.conversion(INT8.framework, INT8.model, "int8")
    host = study.runtime(INT8.framework, INT8.model, "int8", "mobile")
    other = open_runtime("mobile", model, artifact, quantization="int8", resolver="reference")
    images = {"clean": study.evaluation(INT8.framework, INT8.model).images,
              "adversarial": study.adversarial_set(INT8.framework, INT8.model, INT8.attack).images}
    same = {k: _agreement(host.predict_logits(v), host.predict_logits(v)) for k, v in images.items()}
    differs = {k: _agreement(other.predict_logits(v), host.predict_logits(v)) for k, v in images.items()}
    record = {**records[INT8], "host_vs_arm": same}
    assert gating.bit_exact_verdict(record).passed
    verdict = gating.bit_exact_verdict({**record, "host_vs_arm": differs})
    assert not verdict.passed and "differs from this host's runtime" in verdict.text
