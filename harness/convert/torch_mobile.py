"""PyTorch -> lite-interpreter ``.ptl`` (``torch.jit.script`` + ``_save_for_lite_interpreter``).

int8 is eager-mode post-training static quantization, as torchvision's quantizable
models do it: deep copy, eval, ``fuse_model()``, qconfig ``get_default_qconfig('qnnpack')``
with ``torch.backends.quantized.engine = 'qnnpack'`` (the phone's engine), ``prepare``,
calibrate on the calibration images, ``convert``, then script and save. The quantized
module's state dict is kept beside the ``.ptl`` so the PC platform can rebuild the
eager quantized module itself (:func:`quantized_module`).

``torch.utils.mobile_optimizer.optimize_for_mobile`` is not used: it fails in this torch
build (no XNNPACK); the lite interpreter needs no optimisation pass.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from pathlib import Path

import numpy as np

from harness.convert.base import ConversionError, calibration_options, register_converter
from harness.frameworks import import_torch
from harness.zoo.base import ModelSpec, ZooModel

ENGINE = "qnnpack"
CALIBRATION_BATCH = 100
QUANTIZED_STATE = "quantized_state_dict.pt"


@contextlib.contextmanager
def quantized_engine(engine: str = ENGINE):
    """Run with ``torch.backends.quantized.engine`` set, and put the previous one back."""
    torch = import_torch()
    previous = torch.backends.quantized.engine
    if engine not in torch.backends.quantized.supported_engines:
        raise ConversionError(
            f"quantized engine {engine!r} is not in this torch build "
            f"(supported: {torch.backends.quantized.supported_engines})"
        )
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@contextlib.contextmanager
def quiet_deprecations():
    """torch.ao.quantization and the lite interpreter warn on every call: both are deprecated upstream, and still the paper's path."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*must run observer before calling calculate_qparams.*")
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        yield


def prepared_copy(module, spec_id: str):
    """A fused, observed copy of a float module (``prepare`` done, not yet calibrated)."""
    torch = import_torch()
    if not hasattr(module, "fuse_model"):
        raise ConversionError(
            f"{spec_id}: {type(module).__name__} has no fuse_model(); eager int8 quantization needs a "
            "quantizable module (QuantStub/DeQuantStub, FloatFunctional), like torchvision.models.quantization"
        )
    q = copy.deepcopy(module).eval()
    q.fuse_model()
    q.qconfig = torch.ao.quantization.get_default_qconfig(ENGINE)
    torch.ao.quantization.prepare(q, inplace=True)
    return q


def quantized_module(model: ZooModel, state_path: Path):
    """The eager int8 module, rebuilt from the float architecture and the saved quantized state."""
    torch = import_torch()
    with quiet_deprecations(), quantized_engine():
        q = prepared_copy(model.module, model.spec.id)
        torch.ao.quantization.convert(q, inplace=True)
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConversionError(f"{state_path}: not a readable quantized state dict ({exc})") from exc
        q.load_state_dict(state, strict=True)
    return q.eval()


class TorchMobileConverter:
    framework = "pytorch"
    format = "ptl"

    def versions(self) -> dict:
        torch = import_torch()
        import torchvision

        return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}

    def options(self, spec: ModelSpec, quantization: str, n_calibration: int) -> dict:
        options = {
            "export": "torch.jit.script",
            "save": "_save_for_lite_interpreter",
            "optimize_for_mobile": False,
        }
        if quantization == "int8":
            options.update(
                quantization="eager static post-training",
                fuse_model=True,
                qconfig=f"get_default_qconfig('{ENGINE}')",
                engine=ENGINE,
                **calibration_options(spec, n_calibration, CALIBRATION_BATCH),
            )
        return options

    def build(self, model: ZooModel, quantization: str, calibration: np.ndarray | None,
              options: dict, out_dir: Path, filename: str) -> dict:
        torch = import_torch()
        out_dir = Path(out_dir)
        start = time.perf_counter()
        extra = {}
        try:
            with quiet_deprecations():
                if quantization == "int8":
                    with quantized_engine():
                        module = prepared_copy(model.module, model.spec.id)
                        extra["qconfig_repr"] = repr(module.qconfig)
                        with torch.no_grad():  # observers update buffers: no inference tensors
                            for i in range(0, len(calibration), CALIBRATION_BATCH):
                                module(torch.from_numpy(calibration[i:i + CALIBRATION_BATCH]))
                        torch.ao.quantization.convert(module, inplace=True)
                        torch.save(module.state_dict(), out_dir / QUANTIZED_STATE)
                        scripted = torch.jit.script(module)
                        scripted._save_for_lite_interpreter(str(out_dir / filename))
                else:
                    module = model.module.eval()
                    scripted = torch.jit.script(module)
                    scripted._save_for_lite_interpreter(str(out_dir / filename))
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(
                f"{model.spec.id}: PyTorch Mobile {quantization} conversion failed: {type(exc).__name__}: {exc}"
            ) from exc
        extra["conversion_seconds"] = round(time.perf_counter() - start, 3)
        if quantization == "int8":
            extra["quantized_state"] = QUANTIZED_STATE
        return extra


register_converter(TorchMobileConverter())
