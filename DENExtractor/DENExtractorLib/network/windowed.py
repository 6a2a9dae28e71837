"""Exact region-of-interest inference: compute each layer only where a batch's input differs from the empty slice.

Most of a tumour slice's 224x224 input is zero, and a layer's output can differ from the empty slice's output only
at positions whose receptive field meets the changed region of its input. For a batch of slices this module takes
the bounding box of the non-zero input, follows it through the layer table (:data:`architecture.LAYERS`) as one
window per layer, computes every spatial layer only on its window (with the layer's own weights, as a "valid"
operation on an explicitly zero-padded crop), and pastes the result into the empty slice's activations, which are
computed once per model by the same stage functions. The dense head runs on the full final map, so the features
are bitwise those of the full network. When a window covers almost the whole map the full network runs instead.

Window arithmetic along one axis, for a layer with kernel ``k``, stride ``s`` and ``p`` zero-padding positions
before the map (``p = 0`` for "valid"; TensorFlow's "same" puts the odd one after): output ``o`` reads inputs
``o*s - p .. o*s - p + k - 1``. Both axes follow the same rule (the maps are square).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .architecture import INPUT_SHAPE, INPUT_SIZE, LAYERS, POOL_SIZE, POOL_STRIDE
from .probe_cache import cached_probe_answer

TENSOR_ALIGNMENT = 64
"""Byte alignment of TensorFlow's CPU tensors (Eigen's largest vector alignment)."""
FLOAT32_BYTES = 4

SPATIAL_KINDS = ("conv", "maxpool")
"""Layers that mix neighbouring positions; every other layer before ``flatten`` acts on each position alone."""

FULL_PATH_FRACTION = 0.8
"""Run the full network when the windowed work would exceed this fraction of the full network's work."""

MIN_WINDOW_SIDE = 8
"""Every computed window spans at least this many positions per axis (or the whole map). TensorFlow's oneDNN
convolution picks another kernel, with another summation order, for very narrow outputs (measured on AVX-512:
conv1 below 5 output columns, conv2 for a single output position); wider windows compute as the full map does."""

MIN_WINDOWED_BATCH = 2
"""Smallest batch computed by windows. TensorFlow's oneDNN convolution lays its weights out differently for a batch
of one, which moves results by about 1e-7; the empty maps are computed at this batch size and a single slice goes
through the full network, so every batch sees convolutions computed the way its full network computes them."""


def aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros whose data starts on a :data:`TENSOR_ALIGNMENT` boundary, as TensorFlow's own
    tensors do, so that :func:`as_tensor` can hand it to TensorFlow without a copy."""
    count = int(np.prod(shape))
    spare = TENSOR_ALIGNMENT // FLOAT32_BYTES
    raw = np.zeros(count + spare, dtype=np.float32)
    start = (-raw.ctypes.data % TENSOR_ALIGNMENT) // FLOAT32_BYTES
    return raw[start : start + count].reshape(shape)


def as_tensor(array: np.ndarray) -> Any:
    """A TensorFlow tensor on ``array``'s memory (DLPack, no copy; TensorFlow copies every NumPy argument
    otherwise, about 15% of a case's network time). The array must not change while the tensor is used: the
    callers pass arrays assembled for one call and dropped after it."""
    import tensorflow as tf

    return tf.experimental.dlpack.from_dlpack(np.ascontiguousarray(array).__dlpack__())


@dataclass(frozen=True)
class Span:
    """The half-open interval ``start .. stop - 1`` of positions along one axis."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        """Number of positions (0 for an empty span)."""
        return max(self.stop - self.start, 0)

    def widened(self, minimum: int, length: int) -> Span:
        """This span grown to at least ``minimum`` positions inside ``0 .. length - 1`` (unchanged if empty)."""
        if self.length == 0 or self.length >= minimum:
            return self
        stop = min(max(self.stop, self.start + minimum), length)
        return Span(max(stop - minimum, 0), stop)

    def shifted(self, offset: int) -> slice:
        """The slice selecting this span in an array whose position 0 is ``offset``."""
        return slice(self.start - offset, self.stop - offset)


@dataclass(frozen=True)
class Window:
    """A rectangle of positions in a feature map: rows and columns."""

    rows: Span
    columns: Span

    @property
    def area(self) -> int:
        """Number of positions (0 for an empty window)."""
        return self.rows.length * self.columns.length

    def clipped(self, height: int, width: int) -> Window:
        """The part of this window inside a ``height`` x ``width`` map."""
        return self.intersection(Window(Span(0, height), Span(0, width)))

    def intersection(self, other: Window) -> Window:
        """The positions in both windows (possibly empty)."""
        rows = Span(max(self.rows.start, other.rows.start), min(self.rows.stop, other.rows.stop))
        columns = Span(max(self.columns.start, other.columns.start), min(self.columns.stop, other.columns.stop))
        return Window(rows, columns)

    def index(self, offset: Window | None = None) -> tuple[slice, slice, slice, slice]:
        """Index of this window in an (n, height, width, channels) array whose first position is ``offset``'s."""
        row_offset = offset.rows.start if offset is not None else 0
        column_offset = offset.columns.start if offset is not None else 0
        return (slice(None), self.rows.shifted(row_offset), self.columns.shifted(column_offset), slice(None))


@dataclass(frozen=True)
class AxisRule:
    """How one spatial layer maps positions along one axis: output ``o`` reads inputs ``o*stride - pad_before``
    to ``o*stride - pad_before + kernel - 1``; inputs outside ``0 .. input_length - 1`` are zero padding."""

    kernel: int
    stride: int
    pad_before: int
    input_length: int
    output_length: int

    def affected(self, changed: Span) -> Span:
        """The outputs whose inputs meet ``changed`` (clipped to the output map; empty if none)."""
        if changed.length == 0:
            return Span(0, 0)
        first = -((self.kernel - 1 - changed.start - self.pad_before) // self.stride)  # ceil((start + p - k + 1) / s)
        last = (changed.stop - 1 + self.pad_before) // self.stride
        return Span(max(first, 0), min(last + 1, self.output_length))

    def needed(self, outputs: Span) -> Span:
        """The inputs that ``outputs`` read, padding positions included (may start below 0 or end past the map)."""
        start = outputs.start * self.stride - self.pad_before
        return Span(start, (outputs.stop - 1) * self.stride - self.pad_before + self.kernel)


@dataclass(frozen=True)
class Stage:
    """One spatial layer of the table and the per-position layers that follow it.

    ``layers`` are indices into :data:`architecture.LAYERS` (and the Keras model's ``layers``), spatial one first;
    ``multiply_adds`` is the work of one output position, used to decide when the full network is cheaper.
    """

    layers: tuple[int, ...]
    rule: AxisRule
    channels: int
    multiply_adds: int

    def affected(self, changed: Window) -> Window:
        """The output window that can differ from the empty slice's when ``changed`` does at the input."""
        return Window(self.rule.affected(changed.rows), self.rule.affected(changed.columns))

    def computed(self, changed: Window) -> Window:
        """The output window to compute: the affected one, at least :data:`MIN_WINDOW_SIDE` wide per axis."""
        affected, length = self.affected(changed), self.rule.output_length
        return Window(affected.rows.widened(MIN_WINDOW_SIDE, length), affected.columns.widened(MIN_WINDOW_SIDE, length))

    def needed(self, outputs: Window) -> Window:
        """The input window (padding included) that ``outputs`` read."""
        return Window(self.rule.needed(outputs.rows), self.rule.needed(outputs.columns))

    @property
    def output_window(self) -> Window:
        """The whole output map."""
        whole = Span(0, self.rule.output_length)
        return Window(whole, whole)


NO_WINDOW = Window(Span(0, 0), Span(0, 0))
"""The empty window: no position."""


def stages_from_table(layers: Sequence[tuple] = LAYERS, input_size: int = INPUT_SIZE) -> tuple[tuple[Stage, ...], int]:
    """Split the layer table into spatial stages and return them with the index of the first head layer (flatten).

    Raises ValueError for a table whose layers this module does not know how to window.
    """
    stages: list[Stage] = []
    length, channels = input_size, 1
    for index, layer in enumerate(layers):
        kind = layer[0]
        if kind == "flatten":
            return tuple(stages), index
        if kind in SPATIAL_KINDS:
            if kind == "conv":
                _, filters, kernel, stride, padding = layer
                work, channels_out = kernel * kernel * channels * filters, filters
            else:
                kernel, stride, padding = POOL_SIZE, POOL_STRIDE, "valid"
                work, channels_out = kernel * kernel * channels, channels
            rule = _axis_rule(kernel, stride, padding, length)
            stages.append(Stage((index,), rule, channels_out, work))
            length, channels = rule.output_length, channels_out
        elif kind in ("relu", "batchnorm") and stages:
            last = stages[-1]
            stages[-1] = Stage((*last.layers, index), last.rule, last.channels, last.multiply_adds)
        else:
            raise ValueError(f"layer {index} ({kind}) cannot be windowed")
    raise ValueError("the layer table has no flatten layer")


def _axis_rule(kernel: int, stride: int, padding: str, length: int) -> AxisRule:
    """The axis rule of a layer with TensorFlow's padding conventions ("same" puts the odd padding after)."""
    if padding == "same":
        output = -(-length // stride)
        pad_total = max((output - 1) * stride + kernel - length, 0)
        return AxisRule(kernel, stride, pad_total // 2, length, output)
    return AxisRule(kernel, stride, 0, length, (length - kernel) // stride + 1)


def nonzero_window(batch: np.ndarray) -> Window:
    """The bounding box of the non-zero pixels of an (n, height, width, 1) batch (empty if all zero)."""
    rows = np.flatnonzero(np.any(batch != 0, axis=(0, 2, 3)))
    columns = np.flatnonzero(np.any(batch != 0, axis=(0, 1, 3)))
    if rows.size == 0:
        return NO_WINDOW
    return Window(Span(int(rows[0]), int(rows[-1]) + 1), Span(int(columns[0]), int(columns[-1]) + 1))


def _runs_on_cpu_only() -> bool:
    """Whether TensorFlow sees no GPU. The exactness of windows is established for CPU kernels (oneDNN); on a GPU,
    cuDNN picks its algorithm per shape, so the full network runs there."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


@contextmanager
def _tracing_notices_silenced() -> Iterator[None]:
    """Silence TensorFlow's "frequent retracing" warning while the stage functions are traced: they share one
    Python body, so tracing each once (as intended, for any window size) looks like retracing to TensorFlow."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


class WindowedNetwork:
    """DEN over a Keras model's own layers, computing each stage only on the window a batch can change.

    Built once per model and cheap to build (about 0.2 s): every stage becomes one small graph function over the
    model's own layers and variables (no weight is copied), traced once for any window size; the empty slice runs
    once through those same functions, and the empty row once through the full network. :meth:`predict` returns
    bitwise what the full network returns for the same batch. ``uses_windows`` is False where that could not be
    shown at set-up (a GPU, or a probe batch that differs): every batch then goes through the full network.
    """

    def __init__(
        self,
        keras_layers: Sequence[Any],
        full_predict: Callable[[np.ndarray], np.ndarray],
        full_path_fraction: float = FULL_PATH_FRACTION,
        probe_key: str | None = None,
    ) -> None:
        """Wrap a DEN model's ``layers`` (one per row of the layer table); ``full_predict(batch)`` runs it whole.

        Batches whose windowed work exceeds ``full_path_fraction`` of the full work go through ``full_predict``.
        With ``probe_key`` (the weights' sha256), the set-up probe's answer is kept in the probe cache
        (:mod:`probe_cache`) for this platform, TensorFlow build and thread count, and reused from there.
        """
        if len(keras_layers) != len(LAYERS):
            raise ValueError(f"expected {len(LAYERS)} layers as in the layer table, got {len(keras_layers)}")
        self._layers = keras_layers
        self._full_predict = full_predict
        self._full_path_fraction = full_path_fraction
        self.stages, self._head_start = stages_from_table()
        self._full_work = sum(stage.output_window.area * stage.multiply_adds for stage in self.stages)
        channels_in = [1] + [stage.channels for stage in self.stages[:-1]]
        self._stage_functions = [self._stage_function(stage, channels) for stage, channels in zip(self.stages, channels_in, strict=True)]
        self._head_function = self._graph_function(self._apply_head, self.stages[-1].channels)
        self.empty_row = full_predict(np.zeros((1, *INPUT_SHAPE), dtype=np.float32))[0]
        with _tracing_notices_silenced():
            self._empty_maps = self._empty_slice_maps()
            self.uses_windows = _runs_on_cpu_only() and (
                self._probe_is_exact() if probe_key is None else cached_probe_answer(probe_key, self._probe_is_exact)
            )

    def windows(self, changed: Window) -> list[Window]:
        """The input window ``changed`` followed by the output window each stage computes."""
        windows = [changed]
        for stage in self.stages:
            windows.append(stage.computed(windows[-1]))
        return windows

    def work_fraction(self, windows: Sequence[Window]) -> float:
        """The windowed stages' multiply-adds as a fraction of the full stages' (per slice)."""
        work = sum(window.area * stage.multiply_adds for window, stage in zip(windows[1:], self.stages, strict=False))
        return work / self._full_work

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return the (n, 4096) float32 features of an (n, 224, 224, 1) float32 batch, bitwise the full network's.

        A single slice, or a batch whose windows cover almost the whole maps, goes through the full network.
        """
        windows = self.windows(nonzero_window(batch))
        if not self.uses_windows or len(batch) < MIN_WINDOWED_BATCH or self.work_fraction(windows) > self._full_path_fraction:
            return self._full_predict(batch)
        return self._predict_by_windows(batch, windows)

    def _predict_by_windows(self, batch: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
        """The features of a batch computed stage by stage over ``windows`` (see :meth:`windows`)."""
        count = len(batch)
        values = batch[windows[0].index()]
        for position, stage in enumerate(self.stages):
            outputs = windows[position + 1]
            if outputs.area == 0:  # nothing this batch holds reaches this stage: the empty maps from here on
                values = np.empty((count, 0, 0, stage.channels), dtype=np.float32)
                continue
            crop = self._assemble(self._empty_maps[position], stage.needed(outputs), values, windows[position], count)
            values = np.asarray(self._stage_functions[position](as_tensor(crop)))
        final = self._assemble(self._empty_maps[-1], self.stages[-1].output_window, values, windows[-1], count)
        return np.asarray(self._head_function(as_tensor(final)), dtype=np.float32)

    def _probe_is_exact(self) -> bool:
        """Whether a probe batch (tumour in a corner: border padding and the narrowest windows) gives bitwise the
        full network's features here. Kernel choices are the platform's: where they differ, windows stay off."""
        probe = np.zeros((MIN_WINDOWED_BATCH, *INPUT_SHAPE), dtype=np.float32)
        probe[0, :6, :6] = 1.0
        probe[1, 2:5, 1:7] = 0.5
        by_windows = self._predict_by_windows(probe, self.windows(nonzero_window(probe)))  # also traces the head
        return bool(np.array_equal(by_windows, self._full_predict(probe)))

    def _empty_slice_maps(self) -> list[np.ndarray]:
        """The empty slice's input and every stage's output, (1, height, width, channels) each.

        Computed on a batch of :data:`MIN_WINDOWED_BATCH` empty slices, the way a windowed batch computes them.
        """
        maps = [np.zeros((1, *INPUT_SHAPE), dtype=np.float32)]
        nothing = np.empty((MIN_WINDOWED_BATCH, 0, 0, 1), dtype=np.float32)
        for stage, function in zip(self.stages, self._stage_functions, strict=True):
            crop = self._assemble(maps[-1], stage.needed(stage.output_window), nothing, NO_WINDOW, MIN_WINDOWED_BATCH)
            maps.append(np.asarray(function(as_tensor(crop)))[:1])
        return maps

    @staticmethod
    def _assemble(empty: np.ndarray, crop: Window, values: np.ndarray, window: Window, count: int) -> np.ndarray:
        """A stage's input over ``crop`` for ``count`` slices: zero padding outside the map, the empty slice's map
        ``empty`` inside it, and ``values`` (the batch's maps over ``window``) pasted over both."""
        inside = crop.clipped(empty.shape[1], empty.shape[2])
        assembled = aligned_zeros((count, crop.rows.length, crop.columns.length, empty.shape[3]))
        assembled[inside.index(crop)] = empty[inside.index()]
        pasted = window.intersection(inside)
        if pasted.area:
            assembled[pasted.index(crop)] = values[pasted.index(window)]
        return assembled

    def _stage_function(self, stage: Stage, channels_in: int) -> Callable:
        """The graph function of a stage: its spatial layer as a "valid" operation on an input crop, then its
        per-position layers.

        A convolution runs as Keras' own ``Conv2D.call`` does (``ops.conv`` then ``ops.add`` of the reshaped bias,
        with the layer's own variables) but with "valid" padding, since the crop already holds the zero padding.
        """
        from keras import ops

        spatial = self._layers[stage.layers[0]]
        followers = [self._layers[index] for index in stage.layers[1:]]
        is_convolution = LAYERS[stage.layers[0]][0] == "conv"

        def apply(crop: Any) -> Any:
            if is_convolution:
                outputs = ops.conv(crop, spatial.kernel, strides=stage.rule.stride, padding="valid")
                outputs = ops.add(outputs, ops.reshape(spatial.bias, (1, 1, 1, -1)))
            else:
                outputs = spatial(crop)
            for layer in followers:
                outputs = layer(outputs, training=False)
            return outputs

        return self._graph_function(apply, channels_in)

    def _apply_head(self, final_maps: Any) -> Any:
        """Flatten, dense and the rest of the table, on a batch's whole final maps."""
        outputs = final_maps
        for layer in self._layers[self._head_start :]:
            outputs = layer(outputs, training=False)
        return outputs

    @staticmethod
    def _graph_function(function: Callable, channels_in: int) -> Callable:
        """``function`` as a TensorFlow graph function for (batch, any height, any width, ``channels_in``) float32
        inputs: traced once, and fused as the full network's graph is."""
        import tensorflow as tf

        return tf.function(function, input_signature=[tf.TensorSpec((None, None, None, channels_in), tf.float32)])
