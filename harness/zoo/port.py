"""Copy a mini PyTorch model's weights into its Keras twin.

The mini zoo claims the two frameworks hold the same network; this is how that
claim is checked (``tests/zoo/test_mini_architecture.py``): port the weights, feed
both the same tensor, compare logits. Every weight-bearing layer must pair up.
"""

from __future__ import annotations

import numpy as np


class PortError(ValueError):
    pass


def torch_to_keras(torch_model, keras_model) -> int:
    """Copy conv, depthwise conv, BatchNorm and linear weights; returns layers copied."""
    from torch import nn

    keras_layers = {layer.name: layer for layer in keras_model.layers if layer.weights}
    copied = set()
    for path, module in torch_model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)):
            continue
        name = path.replace(".", "_")
        if name not in keras_layers:
            raise PortError(f"PyTorch module {path!r} has no Keras layer named {name!r}")
        layer = keras_layers[name]
        if isinstance(module, nn.Conv2d):
            w = module.weight.detach().numpy()
            if module.groups == 1:
                weights = [w.transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
            elif module.groups == module.in_channels == module.out_channels:
                weights = [w.transpose(2, 3, 0, 1)]  # depthwise: (C, 1, kh, kw) -> (kh, kw, C, 1)
            else:
                raise PortError(f"{path}: grouped convolutions other than depthwise are not supported")
            if module.bias is not None:
                weights.append(module.bias.detach().numpy())
        elif isinstance(module, nn.BatchNorm2d):
            weights = [t.detach().numpy() for t in
                       (module.weight, module.bias, module.running_mean, module.running_var)]
        else:
            weights = [module.weight.detach().numpy().T, module.bias.detach().numpy()]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [tuple(w.shape) for w in weights]:
            raise PortError(f"{path}: PyTorch shapes {[w.shape for w in weights]} != Keras {expected}")
        layer.set_weights([np.ascontiguousarray(w) for w in weights])
        copied.add(name)
    left = sorted(set(keras_layers) - copied)
    if left:
        raise PortError(f"Keras layers with weights but no PyTorch module: {left}")
    return len(copied)
