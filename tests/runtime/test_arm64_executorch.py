""".pte files in the runner: ExecuTorch's aarch64 runtime under qemu (and the host's, in this Python).

The programs are written here by the host's ExecuTorch (torch.export -> XNNPACK lowering,
float and PT2E int8) in a child process (torch.export must not share a process with
TensorFlow, which other tests import); the reference logits come from the host's own
``executorch.runtime`` in that child. The bundle runs them in ExecuTorch 1.0.1 (the aarch64
build for its torch 2.9.1): an older runtime reading the host's newer files, so this is the
check that it really does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from android_harness import runner
from harness.cache import file_sha256
from harness.runtime import PlatformUnavailable
from harness.runtime.registry import check_available
from harness.runtime.remote import JobRequest, RemoteJobError
from tests.convert import support

N = 12
BATCH = 5  # runner chunks of 5: a fixed batch-1 program runs image by image, a dynamic one 5, 5, 2
ROOT = Path(__file__).resolve().parents[2]

EXPORT = r"""
import json, sys
import numpy as np
import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
from executorch.exir import to_edge_transform_and_lower
from executorch.runtime import Runtime
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from harness.zoo import mini

out = sys.argv[1]
module = mini.load("pytorch", "mobilenet_v2").module.eval()
x = torch.from_numpy(np.load(f"{out}/x.npy"))
calibration = torch.from_numpy(np.load(f"{out}/calibration.npy"))
# float: a fixed batch of one image; int8: a dynamic batch (up to 64)
dynamic = ({0: torch.export.Dim("batch", min=1, max=64)},)
float_ep = torch.export.export(module, (x[:1],))
graph = torch.export.export(module, (x[:2],), dynamic_shapes=dynamic).module()
quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
prepared = prepare_pt2e(graph, quantizer)
prepared(calibration)
int8_ep = torch.export.export(convert_pt2e(prepared), (x[:2],), dynamic_shapes=dynamic)
runtime = Runtime.get()
for name, ep in (("float", float_ep), ("int8", int8_ep)):
    data = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    open(f"{out}/{name}.pte", "wb").write(data)
    method = runtime.load_program(data).load_method("forward")
    if name == "float":
        logits = np.concatenate([method.execute([x[i:i + 1]])[0].numpy() for i in range(len(x))])
    else:
        logits = method.execute([x])[0].numpy()
    np.save(f"{out}/{name}_host.npy", logits)
import executorch.version
print(json.dumps({"executorch": executorch.version.__version__, "torch": torch.__version__}))
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """float.pte and int8.pte of the trained mini mobilenet_v2, the images, and the host's logits."""
    out = tmp_path_factory.mktemp("pte")
    model = support.trained("pytorch", "mobilenet_v2")
    images = support.evaluation().images[:N]
    np.save(out / "images.npy", images)
    np.save(out / "x.npy", model.spec.normalization(images))
    np.save(out / "calibration.npy", model.spec.normalization(support.calibration().images[:32]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", EXPORT, str(out)], capture_output=True, text=True, timeout=900,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    host = json.loads(done.stdout.strip().splitlines()[-1])
    return {"dir": out, "spec": model.spec, "images": images, "host_versions": host,
            "host": {q: np.load(out / f"{q}_host.npy") for q in ("float", "int8")}}


def preprocess(spec) -> dict:
    n = spec.normalization
    return {"scale": n.scale, "mean": list(n.mean), "std": list(n.std), "channel_order": n.channel_order,
            "layout": n.layout}


def request(programs, path: Path, quantization: str) -> JobRequest:
    spec = programs["spec"]
    return JobRequest(path, file_sha256(path), "pte", quantization, 1, None, None, preprocess(spec),
                      spec.num_classes, BATCH, programs["images"])


def assert_matches_host(logits, expected, quantization):
    assert logits.shape == expected.shape
    assert (logits.argmax(1) == expected.argmax(1)).all()
    difference = np.abs(logits - expected)
    if quantization == "int8":
        # Integer kernels, but XNNPACK's x86 and ARM requantization round a few values apart:
        # measured, 5 of 120 logits one output quantization step (0.135) off, the rest identical.
        assert (difference > 0).mean() <= 0.1, f"{(difference > 0).sum()} of {difference.size} logits differ"
        assert difference.max() <= 0.02 * np.abs(expected).max(), difference.max()
    else:  # float: x86 and ARM XNNPACK kernels round differently (fused multiply-add)
        assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max(), np.abs(logits - expected).max()


def test_the_runner_in_this_python_matches_the_host_runtime_bit_for_bit(programs, tmp_path):
    """The runner's .pte path on this host (ExecuTorch's ``_C`` binding) against ``executorch.runtime``."""
    jobs = [{"id": q, "model": str(programs["dir"] / f"{q}.pte"), "format": "pte", "quantization": q, "threads": 1,
             "input": {"npy": str(programs["dir"] / "images.npy")}, "preprocess": preprocess(programs["spec"]),
             "num_classes": programs["spec"].num_classes, "batch_size": BATCH} for q in ("float", "int8")]
    jobfile = tmp_path / "jobs.json"
    jobfile.write_text(json.dumps({"format": runner.RUNNER_FORMAT, "jobs": jobs}))
    done = subprocess.run([sys.executable, str(runner.__file__), str(jobfile), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["versions"]["executorch"] == programs["host_versions"]["executorch"].split("+")[0]
    for q in ("float", "int8"):
        assert np.array_equal(np.load(tmp_path / "out" / f"{q}.npy"), programs["host"][q])


def test_pte_float_and_int8_under_qemu_match_the_host_and_a_bad_file_fails_alone(programs, tmp_path):
    try:
        check_available("arm64")
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    from harness.runtime.arm64 import backend

    chosen = backend(support.cache(), "full")
    assert "executorch" in chosen.transport.bundle.families
    garbage = tmp_path / "garbage.pte"
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(200))  # a LiteRT header: not an ExecuTorch program
    requests = [request(programs, programs["dir"] / f"{q}.pte", q) for q in ("float", "int8")]
    results = chosen.run(requests + [request(programs, garbage, "float")])
    for q, result in zip(("float", "int8"), results):
        assert not isinstance(result, Exception), result
        assert_matches_host(result.logits, programs["host"][q], q)
        assert result.platform_facts["machine"] == "aarch64" and result.transport["emulated"]
        assert result.versions["executorch"] == chosen.transport.bundle.versions["executorch"]
        assert result.versions["torch"].split("+")[0] == chosen.transport.bundle.versions["torch"]
    assert isinstance(results[2], RemoteJobError)
    assert str(garbage) in str(results[2]) and "not an ExecuTorch program" in str(results[2])


def test_the_comparison_fails_on_other_logits(programs):
    """The checks above are not vacuous: the float program's logits are not the int8 one's."""
    with pytest.raises(AssertionError):
        assert_matches_host(programs["host"]["float"], programs["host"]["int8"], "int8")
    shifted = programs["host"]["float"] + 1e-2 * np.abs(programs["host"]["float"]).max()
    with pytest.raises(AssertionError):
        assert_matches_host(shifted, programs["host"]["float"], "float")
