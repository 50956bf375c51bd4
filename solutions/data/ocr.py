"""Images of digit strings for CTC training, generated on the fly.

A sample is a string of 1 to 8 digits (lengths and digits uniform), written in one font of a
split (see :mod:`solutions.data.glyphs`), with random spacing between the glyphs (touching or
overlapping ones included), then distorted as a whole:

1. an affine map (scale, rotation, shear, translation), which also shrinks strings that would not
   fit the image width;
2. an elastic displacement field (Simard et al. 2003): smooth random noise added to the sampling
   grid, so strokes bend a little differently in every sample;
3. stroke width: the ink is blended with its dilation, thicker or thinner;
4. contrast, background, blur and Gaussian noise.

All randomness of sample ``i`` of batch ``step`` comes from ``sample_rng(seed, step, i)``; the
warps are then applied to the whole batch at once with ``torch.nn.functional.grid_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from solutions._validate import check_positive_int
from solutions.data import sample_rng
from solutions.data.glyphs import glyph_bank

BLANK = 0  # CTC blank; digit d has class d + 1
NUM_CLASSES = 11


@dataclass(frozen=True)
class OCRStyle:
    """Ranges of the random variations; the defaults are those of the course's experiments."""

    height: int = 32  # image height in pixels
    width: int = 128  # image width in pixels
    glyph_height: int = 24  # height of the rendered digits before the affine scale
    min_len: int = 1  # shortest string
    max_len: int = 8  # longest string
    gap: tuple[float, float] = (-1.0, 6.0)  # pixels between neighbouring glyphs
    scale: tuple[float, float] = (0.8, 1.15)  # glyph size relative to glyph_height
    aspect: tuple[float, float] = (0.85, 1.2)  # extra horizontal stretch
    rotation: float = 4.0  # maximum rotation, degrees
    shear: float = 0.3  # maximum horizontal shear (x += shear * y)
    elastic: float = 1.2  # standard deviation of the elastic displacement, pixels
    stroke: tuple[float, float] = (-0.5, 0.8)  # blend weight with the dilated ink (<0: thinner)
    noise: tuple[float, float] = (0.0, 0.12)  # standard deviation of the Gaussian pixel noise
    blur_prob: float = 0.3  # probability of a 3x3 box blur


_CANVAS = 256  # width of the canvas a string is composed on, before the affine warp


def _compose(rng: np.random.Generator, bank, style: OCRStyle) -> tuple[np.ndarray, list, int]:
    """One undistorted string on a ``(height, _CANVAS)`` canvas: (canvas, labels, ink width)."""
    length = int(rng.integers(style.min_len, style.max_len + 1))
    digits = rng.integers(0, 10, size=length)
    glyphs = bank[int(rng.integers(len(bank)))]
    gaps = rng.uniform(*style.gap, size=length)
    widths = [glyphs[d].shape[1] for d in digits]
    total = int(sum(widths) + round(gaps[:-1].sum()))
    canvas = np.zeros((style.height, _CANVAS), dtype=np.float32)
    top = (style.height - style.glyph_height) // 2
    x = max(0, (_CANVAS - total) // 2)
    for d, w, gap in zip(digits, widths, gaps, strict=True):
        dy = int(rng.integers(-1, 2))  # a baseline that wobbles by a pixel
        rows = slice(top + dy, top + dy + style.glyph_height)
        cols = slice(x, min(x + w, _CANVAS))
        region = canvas[rows, cols]
        np.maximum(region, glyphs[d][:, : region.shape[1]], out=region)
        x += w + int(round(gap))
    return canvas, [int(d) + 1 for d in digits], total


def ocr_batch(
    seed: int, step: int, indices, split: str = "train", style: OCRStyle | None = None
) -> tuple[torch.Tensor, list[list[int]]]:
    """Rows ``indices`` of batch ``step`` of the stream ``seed``, glyphs from fonts of ``split``.

    Returns ``images`` of shape ``(N, 1, height, width)``, float32 in ``[0, 1]`` (ink bright on
    a dark background), and ``labels``: for each image its classes, digit ``d`` as ``d + 1``.
    """
    style = OCRStyle() if style is None else style
    for name in ("height", "width", "glyph_height", "min_len", "max_len"):
        check_positive_int(name, getattr(style, name))
    if style.min_len > style.max_len:
        raise ValueError(f"min_len: must not exceed max_len ({style.max_len}), got {style.min_len}")
    if style.glyph_height > style.height:
        raise ValueError(f"glyph_height: must not exceed height ({style.height})")
    bank = glyph_bank(split, style.glyph_height)
    indices = list(indices)
    n, h, w = len(indices), style.height, style.width
    canvases = np.empty((n, 1, h, _CANVAS), dtype=np.float32)
    theta = np.empty((n, 2, 3), dtype=np.float32)
    coarse = np.empty((n, 2, 3, 9), dtype=np.float32)
    pix = np.empty((n, 5), dtype=np.float32)  # stroke, background, foreground, noise sd, blur
    noise = np.empty((n, 1, h, w), dtype=np.float32)
    labels = []
    for row, i in enumerate(indices):
        rng = sample_rng(seed, step, i)
        canvases[row, 0], digits, ink_width = _compose(rng, bank, style)
        labels.append(digits)
        scale = rng.uniform(*style.scale)
        # sx, sy: source pixels per output pixel; sx is raised until the whole string fits
        shear = rng.uniform(-style.shear, style.shear)
        margin = 6 + abs(shear) * h  # pixels kept free at the ends: shear leans the glyph tops
        sx = max(rng.uniform(*style.aspect) / scale, (ink_width + margin) / w)
        sy = 1.0 / scale
        angle = np.deg2rad(rng.uniform(-style.rotation, style.rotation))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        m = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])  # output -> source px
        slack = max(0.0, w * sx - ink_width - margin)
        tx = rng.uniform(-slack / 2, slack / 2)
        ty = rng.uniform(-1.5, 1.5)
        # affine_grid works in normalised coordinates: output x in [-1, 1] spans w/2 pixels
        theta[row] = [
            [m[0, 0] * w / _CANVAS, m[0, 1] * h / _CANVAS, 2 * tx / _CANVAS],
            [m[1, 0] * w / h, m[1, 1], 2 * ty / h],
        ]
        coarse[row] = rng.standard_normal((2, 3, 9))
        pix[row, 0] = rng.uniform(*style.stroke)
        pix[row, 1] = rng.uniform(0.0, 0.3)
        pix[row, 2] = rng.uniform(0.7, 1.0)
        pix[row, 3] = rng.uniform(*style.noise)
        pix[row, 4] = rng.random() < style.blur_prob
        noise[row] = rng.standard_normal((1, h, w), dtype=np.float32)
    return _distort(canvases, theta, coarse, pix, noise, style), labels


def _distort(canvases, theta, coarse, pix, noise, style: OCRStyle) -> torch.Tensor:
    """Apply the per-sample warps and pixel changes to the whole batch."""
    n, h, w = canvases.shape[0], style.height, style.width
    src = torch.from_numpy(canvases)  # (N, 1, h, _CANVAS)
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, h, w], align_corners=False)  # (N,h,w,2)
    field = F.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bicubic")  # (N, 2, h, w)
    # displacement in pixels -> normalised source coordinates (x spans _CANVAS, y spans h)
    px = torch.tensor([2.0 / _CANVAS, 2.0 / h]).view(1, 2, 1, 1)
    grid = grid + (style.elastic * field * px).permute(0, 2, 3, 1)
    ink = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    p = torch.from_numpy(pix).view(n, 5, 1, 1)
    thick = F.max_pool2d(ink, 3, stride=1, padding=1)
    ink = (ink + p[:, 0:1] * (thick - ink)).clamp(0.0, 1.0)
    blurred = F.avg_pool2d(ink, 3, stride=1, padding=1, count_include_pad=False)
    ink = torch.where(p[:, 4:5] > 0, blurred, ink)
    image = p[:, 1:2] + (p[:, 2:3] - p[:, 1:2]) * ink + p[:, 3:4] * torch.from_numpy(noise)
    return image.clamp(0.0, 1.0)  # (N, 1, h, w)


def labels_to_targets(labels: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated CTC targets and their lengths, as ``F.ctc_loss`` takes them."""
    lengths = torch.tensor([len(seq) for seq in labels], dtype=torch.long)
    targets = torch.tensor([c for seq in labels for c in seq], dtype=torch.long)
    return targets, lengths


def labels_to_string(labels) -> str:
    """Class indices (digit ``d`` as ``d + 1``) to the digit string."""
    return "".join(str(int(c) - 1) for c in labels)

