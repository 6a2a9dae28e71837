"""DEN's layer table as data, so that weight shapes are known without importing TensorFlow.

The table follows the published design layer for layer (input 224x224x1):

| # | layers | output |
|---|---|---|
| 1 | Conv2D 96, 9x9, stride 4, valid | 54x54x96 |
| 2 | ReLU, BatchNormalization, MaxPooling 3x3 stride 2 | 26x26x96 |
| 3 | Conv2D 256, 7x7, same; ReLU, BatchNormalization, MaxPooling 3x3/2 | 12x12x256 |
| 4 | Conv2D 384, 3x3, same; ReLU | 12x12x384 |
| 5 | Conv2D 384, 3x3, same; ReLU | 12x12x384 |
| 6 | Conv2D 256, 3x3, same; ReLU; MaxPooling 3x3/2 | 5x5x256 |
| 7 | Flatten; Dense 4096; ReLU | 4096 |
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 224
"""Side of the square input image, in pixels."""

INPUT_SHAPE = (INPUT_SIZE, INPUT_SIZE, 1)
FEATURE_COUNT = 4096
"""Length of the feature vector computed for every slice."""

PARAMETER_COUNT = 30_529_856
"""Total number of parameters (trainable and BatchNormalization statistics)."""

FLOPS_PER_SLICE = 2.618e9
"""Floating-point operations of one forward pass (multiply and add counted apart)."""

LAYERS: tuple[tuple, ...] = (
    ("conv", 96, 9, 4, "valid"),
    ("relu",),
    ("batchnorm",),
    ("maxpool",),
    ("conv", 256, 7, 1, "same"),
    ("relu",),
    ("batchnorm",),
    ("maxpool",),
    ("conv", 384, 3, 1, "same"),
    ("relu",),
    ("conv", 384, 3, 1, "same"),
    ("relu",),
    ("conv", 256, 3, 1, "same"),
    ("relu",),
    ("maxpool",),
    ("flatten",),
    ("dense", FEATURE_COUNT),
    ("relu",),
)
"""The layers in order: ``("conv", filters, kernel, stride, padding)``, ``("dense", units)`` and parameterless kinds."""

POOL_SIZE = 3
POOL_STRIDE = 2


@dataclass(frozen=True)
class WeightSpec:
    """One weight array of the model: its role, shape and Glorot fan-in/fan-out (for kernels)."""

    role: str
    shape: tuple[int, ...]
    fan_in: int = 0
    fan_out: int = 0


def weight_specs() -> list[WeightSpec]:
    """Return the model's weight arrays in ``model.get_weights()`` order, derived from :data:`LAYERS`."""
    specs: list[WeightSpec] = []
    height, width, channels = INPUT_SHAPE
    for layer in LAYERS:
        kind = layer[0]
        if kind == "conv":
            _, filters, kernel, stride, padding = layer
            receptive = kernel * kernel
            specs.append(WeightSpec("kernel", (kernel, kernel, channels, filters), receptive * channels, receptive * filters))
            specs.append(WeightSpec("bias", (filters,)))
            height, width = _conv_output(height, kernel, stride, padding), _conv_output(width, kernel, stride, padding)
            channels = filters
        elif kind == "batchnorm":
            specs.extend(WeightSpec(role, (channels,)) for role in ("gamma", "beta", "moving_mean", "moving_variance"))
        elif kind == "maxpool":
            height, width = _conv_output(height, POOL_SIZE, POOL_STRIDE, "valid"), _conv_output(width, POOL_SIZE, POOL_STRIDE, "valid")
        elif kind == "flatten":
            height, width, channels = 1, 1, height * width * channels
        elif kind == "dense":
            units = layer[1]
            specs.append(WeightSpec("kernel", (channels, units), channels, units))
            specs.append(WeightSpec("bias", (units,)))
            channels = units
    return specs


def _conv_output(length: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution or pooling window along one axis."""
    if padding == "same":
        return -(-length // stride)
    return (length - kernel) // stride + 1
