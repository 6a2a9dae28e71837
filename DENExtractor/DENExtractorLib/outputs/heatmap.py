"""The features heatmap picture (slices x features, viridis) saved beside the feature matrix.

Drawn with Pillow and numpy directly (about 20 ms), not through matplotlib's figure machinery (about 0.4 s a case):
a 1000 x 500 picture with the title, the feature axis and the row axis with their ticks and labels, and a colour
bar labelled "activation" with its ticks. Each pixel column shows the largest value of the feature columns it
covers (4096 features in about 700 pixels: a single strong feature stays visible), each row of the matrix is a band
of pixel rows. Colours are matplotlib's viridis (256 entries, the colour map's published values), scaled from the
matrix's smallest to its largest value.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (1000, 500)
PLOT = (90, 34, 806, 440)
"""The matrix's box in the picture: left, top, right, bottom (pixels)."""
COLOUR_BAR = (850, 34, 870, 440)
TICK_LENGTH = 4
INK, PAPER = (0, 0, 0), (255, 255, 255)
VIRIDIS = np.frombuffer(bytes.fromhex(
    "44015444025645045745055946075a46085c460a5d460b5e470d60470e6147106347116447136548146748166848176948186a481a6c481b"
    "6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a472d7b472e7c472f7d46307e46327e46"
    "337f463480453581453781453882443983443a83443b84433d84433e85423f854240864241864142874144874045884046883f47883f4889"
    "3e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d"
    "8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d"
    "708e2d718e2c718e2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e"
    "26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d21918c20928c2092"
    "8c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f881fa0881fa1881fa1871fa28720a38620"
    "a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad8128ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b"
    "32b67a34b67935b77937b87838b9773aba763bbb753dbc743fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c5"
    "6954c56856c66758c7655ac8645cc8635ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517c"
    "d2507fd34e81d34d84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32"
    "addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21ad8e219dae319dde3"
    "18dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725"
), dtype=np.uint8).reshape(256, 3)
"""matplotlib's viridis colour map, 256 RGB entries from the lowest value to the highest."""


def save_heatmap_png(features: np.ndarray, path: Path, title: str, row_label: str = "slice") -> None:
    """Draw ``features`` (rows = slices, columns = features) as a viridis heatmap with labelled axes and colour bar."""
    low, high = float(np.min(features)), float(np.max(features))
    picture = Image.new("RGB", SIZE, PAPER)
    picture.paste(Image.fromarray(_matrix_pixels(features, low, high)), PLOT[:2])
    bar_height = COLOUR_BAR[3] - COLOUR_BAR[1]
    bar = VIRIDIS[np.linspace(255, 0, bar_height).round().astype(np.intp)]
    picture.paste(Image.fromarray(np.repeat(bar[:, None, :], COLOUR_BAR[2] - COLOUR_BAR[0], axis=1)), COLOUR_BAR[:2])
    draw = ImageDraw.Draw(picture)
    draw.rectangle((PLOT[0] - 1, PLOT[1] - 1, PLOT[2], PLOT[3]), outline=INK)
    draw.rectangle((COLOUR_BAR[0] - 1, COLOUR_BAR[1] - 1, COLOUR_BAR[2], COLOUR_BAR[3]), outline=INK)
    draw.text(((PLOT[0] + PLOT[2]) / 2, 18), title, fill=INK, font=_font(13), anchor="mm")
    _feature_axis(draw, features.shape[1])
    _row_axis(picture, draw, features.shape[0], row_label)
    _colour_bar_axis(picture, draw, low, high)
    picture.save(path, format="PNG")


def _matrix_pixels(features: np.ndarray, low: float, high: float) -> np.ndarray:
    """The plot box's RGB pixels: per pixel column the largest value of its feature columns, rows as bands."""
    rows, columns = features.shape
    width, height = PLOT[2] - PLOT[0], PLOT[3] - PLOT[1]
    starts = np.arange(width) * columns // width
    binned = np.maximum.reduceat(features, starts, axis=1) if columns >= width else features[:, starts]
    scale = 255.0 / (high - low) if high > low else 0.0
    indices = np.clip((binned - low) * scale, 0, 255).astype(np.intp)
    bands = np.minimum(np.arange(height) * rows // height, rows - 1)
    return VIRIDIS[indices[bands]]


def _feature_axis(draw: ImageDraw.ImageDraw, columns: int) -> None:
    """Ticks and numbers along the bottom (feature index) and the axis label."""
    width = PLOT[2] - PLOT[0]
    for value in _index_ticks(columns, 10):
        x = PLOT[0] + (value + 0.5) * width / columns
        draw.line((x, PLOT[3], x, PLOT[3] + TICK_LENGTH), fill=INK)
        draw.text((x, PLOT[3] + TICK_LENGTH + 2), f"{value:g}", fill=INK, font=_font(14), anchor="mt")
    draw.text(((PLOT[0] + PLOT[2]) / 2, PLOT[3] + 38), f"feature index (0-{columns - 1})", fill=INK, font=_font(14),
              anchor="mm")


def _row_axis(picture: Image.Image, draw: ImageDraw.ImageDraw, rows: int, row_label: str) -> None:
    """Ticks and numbers down the left side (row index, row 0 at the top) and the rotated two-line axis label."""
    height = PLOT[3] - PLOT[1]
    for value in _index_ticks(rows, 6):
        y = PLOT[1] + (value + 0.5) * height / rows
        draw.line((PLOT[0] - 1 - TICK_LENGTH, y, PLOT[0] - 1, y), fill=INK)
        draw.text((PLOT[0] - TICK_LENGTH - 4, y), f"{value:g}", fill=INK, font=_font(14), anchor="rm")
    _vertical_text(picture, f"{row_label}\nrows 0-{rows - 1}", 13, (34, (PLOT[1] + PLOT[3]) / 2))


def _colour_bar_axis(picture: Image.Image, draw: ImageDraw.ImageDraw, low: float, high: float) -> None:
    """Ticks and values on the colour bar's right and its rotated label "activation"."""
    height = COLOUR_BAR[3] - COLOUR_BAR[1]
    span = high - low if high > low else 1.0
    ticks = _nice_ticks(low, high, 8) if high > low else [low]
    decimals = _decimals(ticks)
    for value in ticks:
        y = COLOUR_BAR[3] - (value - low) / span * height
        draw.line((COLOUR_BAR[2], y, COLOUR_BAR[2] + TICK_LENGTH, y), fill=INK)
        draw.text((COLOUR_BAR[2] + TICK_LENGTH + 4, y), f"{value:.{decimals}f}", fill=INK, font=_font(14), anchor="lm")
    _vertical_text(picture, "activation", 14, (930, (COLOUR_BAR[1] + COLOUR_BAR[3]) / 2))


def _nice_ticks(low: float, high: float, most: int) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) inside ``low .. high``, at most ``most``."""
    span = high - low
    if span <= 0:
        return [low]
    magnitude = 10 ** math.floor(math.log10(span / most))
    step = next(magnitude * factor for factor in (1, 2, 2.5, 5, 10) if span / (magnitude * factor) <= most)
    first = math.ceil(low / step - 1e-9)
    values = [(first + index) * step for index in range(int((high - first * step) / step + 1e-9) + 1)]
    return [round(value, 12) for value in values if value <= high + 1e-12]


def _index_ticks(count: int, most: int) -> list[int]:
    """Round tick values for the indices ``0 .. count - 1`` of rows or columns: whole numbers only, and none past
    the last index (a tick there would stand outside the plot, over the other axis's numbers)."""
    return [int(value) for value in _nice_ticks(0, count - 1, most) if float(value).is_integer()]


def _decimals(ticks: list[float]) -> int:
    """Decimals that tell the tick values apart (as few as possible)."""
    for decimals in range(8):
        if all(abs(value - round(value, decimals)) < 1e-9 for value in ticks):
            return decimals
    return 8


def _vertical_text(picture: Image.Image, text: str, size: int, centre: tuple[float, float]) -> None:
    """Write ``text`` turned 90 degrees anticlockwise (read bottom to top), centred on ``centre``."""
    font = _font(size)
    box = [round(edge) for edge in ImageDraw.Draw(picture).multiline_textbbox((0, 0), text, font=font, align="center")]
    label = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 4), PAPER)
    ImageDraw.Draw(label).multiline_text((2 - box[0], 2 - box[1]), text, fill=INK, font=font, align="center")
    turned = label.transpose(Image.Transpose.ROTATE_90)
    picture.paste(turned, (round(centre[0] - turned.width / 2), round(centre[1] - turned.height / 2)))


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` pixels (a bitmap font where Pillow has no FreeType)."""
    return ImageFont.load_default(size=size)
