"""ShapesWorld: a synthetic, seeded, long-tailed open-vocabulary detection world (the world itself).

Each image holds 1-``max_objects`` objects; an object is a shape (circle, square, ...) in a colour
(red, green, ...), and its class name is ``"<colour> <shape>"``. Objects vary in size, rotation and
aspect, may overlap (later objects occlude earlier ones; the ground-truth mask is the *visible* part),
and lie on textured backgrounds (gradients, noise, stripes, checkers) with unannotated distractors
(irregular blobs, lines). Colours are jittered per object and shaded, so colour is learnable but not
given away by one pixel value.

Categories are split deterministically (by seed) into LVIS-style frequency buckets f / c / r. The
sampling weight depends on the bucket; rare categories never appear in the training split but do in
validation, so rare-category AP (APr) measures zero-shot transfer to unseen colour-shape pairs.

This module draws one image from a generator (:func:`render_image`); which generator each image gets is
in :mod:`regionspot.shapesworld.streams`, and :mod:`regionspot.shapesworld.generate` writes datasets.
Pixel coordinates throughout: x to the right, y down, origin at the top-left corner of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from regionspot.errors import RegionSpotError
from regionspot.shapesworld.shapes import SHAPES, rasterize_shape
from regionspot.shapesworld.streams import CATEGORY_BUCKETS, stream_rng

# Base RGB per colour name. Chosen to stay distinguishable under the per-object jitter below.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 55),
    "blue": (35, 70, 215),
    "yellow": (240, 215, 35),
    "purple": (125, 45, 170),
    "orange": (245, 135, 25),
    "white": (245, 245, 240),
    "black": (20, 20, 22),
    "pink": (245, 135, 190),
    "cyan": (40, 205, 215),
    "brown": (115, 70, 35),
    "gray": (128, 128, 128),
}

# Object radius range as a fraction of the image side (log-uniform between the two).
MIN_RADIUS, MAX_RADIUS = 0.045, 0.2


@dataclass(frozen=True)
class WorldConfig:
    """What a ShapesWorld looks like; one value is shared by the data, both tiny backbones and the build.

    colours / shapes: the class grid (None: all of ``COLOURS`` / ``SHAPES``); radius_range: an object's
    radius as fractions of the image side (log-uniform); max_objects: objects per image are 1..this;
    max_distractors: unannotated blobs and lines per image are 0..this; bucket_fractions: share of
    categories in the f / c / r buckets.
    """

    colours: tuple[str, ...] | None = None
    shapes: tuple[str, ...] | None = None
    radius_range: tuple[float, float] = (MIN_RADIUS, MAX_RADIUS)
    max_objects: int = 10
    max_distractors: int = 5
    bucket_fractions: tuple[float, float, float] = (0.5, 0.3, 0.2)

    def __post_init__(self) -> None:
        # YAML/JSON give lists; keep the frozen value hashable and comparable.
        for name in ("colours", "shapes", "radius_range", "bucket_fractions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        low, high = self.radius_range
        if not 0 < low <= high <= 0.5:
            raise RegionSpotError(f"radius_range must satisfy 0 < low <= high <= 0.5 (fractions of the side), got {self.radius_range}.")
        if not 1 <= self.max_objects <= 99:
            raise RegionSpotError(f"max_objects must be in 1..99, got {self.max_objects}.")

    @property
    def shape_names(self) -> tuple[str, ...]:
        """The shapes of this world, in category order."""
        return SHAPES if self.shapes is None else self.shapes

    def categories(self, seed: int = 0) -> list[ShapesWorldCategory]:
        """The category list of this world for ``seed`` (see :func:`shapesworld_categories`)."""
        colours = None if self.colours is None else list(self.colours)
        shapes = None if self.shapes is None else list(self.shapes)
        return shapesworld_categories(seed, colours, shapes, self.bucket_fractions)


# The second world the build can use: fewer, clearly distinct classes (no shape that a rotation or an
# aspect change turns into another: square/diamond, circle/hexagon/pentagon) and larger, fewer objects.
WORLD_PRESETS: dict[str, WorldConfig] = {
    "v1": WorldConfig(),
    "v2": WorldConfig(
        colours=("red", "green", "blue", "yellow", "purple", "white", "black", "cyan"),
        shapes=("circle", "square", "triangle", "star", "ring", "cross", "heart", "crescent"),
        radius_range=(0.08, 0.25),
        max_objects=6,
        max_distractors=3,
    ),
}


def world_preset(name: str) -> WorldConfig:
    """The :data:`WORLD_PRESETS` entry ``name``; a one-line error naming the choices otherwise."""
    if name not in WORLD_PRESETS:
        raise RegionSpotError(f"Unknown ShapesWorld world {name!r}; choose one of {sorted(WORLD_PRESETS)}.")
    return WORLD_PRESETS[name]


@dataclass(frozen=True)
class ShapesWorldCategory:
    """One class: ``name`` is ``"<colour> <shape>"``; ``frequency`` is 'f', 'c' or 'r'."""

    id: int
    name: str
    colour: str
    shape: str
    frequency: str


# --------------------------------------------------------------------------------------------------
# Categories and frequency buckets


def shapesworld_categories(
    seed: int = 0,
    colours: list[str] | None = None,
    shapes: list[str] | None = None,
    bucket_fractions: tuple[float, float, float] = (0.5, 0.3, 0.2),
) -> list[ShapesWorldCategory]:
    """The category list: ids 1..K in colour-major order, each assigned to an f / c / r bucket.

    The bucket assignment is a seeded permutation split by ``bucket_fractions`` (f, c, r). It is redrawn
    until every colour and every shape occurs in some non-rare category, so each rare class is an
    unseen *combination* of a seen colour and a seen shape.
    """
    colours = list(COLOURS) if colours is None else list(colours)
    shapes = list(SHAPES) if shapes is None else list(shapes)
    unknown = [c for c in colours if c not in COLOURS] + [s for s in shapes if s not in SHAPES]
    if unknown:
        raise RegionSpotError(
            f"Unknown ShapesWorld colour/shape {unknown}; choose from {list(COLOURS)} and {list(SHAPES)}."
        )
    if not colours or not shapes:
        raise RegionSpotError("ShapesWorld needs at least one colour and one shape.")
    fractions = np.asarray(bucket_fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or fractions.sum() <= 0:
        raise RegionSpotError(f"bucket_fractions must be three non-negative numbers (f, c, r), got {bucket_fractions}.")
    fractions = fractions / fractions.sum()
    pairs = [(c, s) for c in colours for s in shapes]
    k = len(pairs)
    n_f = max(1, int(round(fractions[0] * k)))
    n_c = min(k - n_f, int(round(fractions[1] * k)))
    rng = stream_rng(seed, CATEGORY_BUCKETS)
    for _attempt in range(1000):
        order = rng.permutation(k)
        bucket = np.empty(k, dtype="<U1")
        bucket[order[:n_f]] = "f"
        bucket[order[n_f : n_f + n_c]] = "c"
        bucket[order[n_f + n_c :]] = "r"
        seen_colours = {pairs[i][0] for i in range(k) if bucket[i] != "r"}
        seen_shapes = {pairs[i][1] for i in range(k) if bucket[i] != "r"}
        if seen_colours == set(colours) and seen_shapes == set(shapes):
            break
    return [
        ShapesWorldCategory(id=i + 1, name=f"{c} {s}", colour=c, shape=s, frequency=str(bucket[i]))
        for i, (c, s) in enumerate(pairs)
    ]


def category_probabilities(categories: list[ShapesWorldCategory], weights: tuple[float, float, float]) -> np.ndarray:
    """(K,) float64 sampling probabilities: each category gets its bucket's weight (f, c, r), normalised."""
    by_bucket = {"f": weights[0], "c": weights[1], "r": weights[2]}
    p = np.array([by_bucket[c.frequency] for c in categories], dtype=np.float64)
    if p.sum() <= 0:
        raise RegionSpotError(f"Bucket weights {weights} give every category zero probability; make one positive.")
    return p / p.sum()


def uniform_probabilities(categories: list[ShapesWorldCategory]) -> np.ndarray:
    """(K,) float64, every category equally likely (the pre-training pools and the example ignore buckets)."""
    return np.full(len(categories), 1.0 / len(categories))


# --------------------------------------------------------------------------------------------------
# Backgrounds and distractors


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(40, 215, size=3)
    grey = base.mean()
    return (grey + (base - grey) * rng.uniform(0.2, 0.7)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a small random grid upsampled bicubically, (h, w, channels)."""
    grid = rng.uniform(0, 255, size=(cells, cells, channels)).astype(np.uint8)
    mode = "L" if channels == 1 else "RGB"
    img = Image.fromarray(grid[..., 0] if channels == 1 else grid, mode=mode).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return arr.reshape(h, w, channels)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 RGB in [0, 255]: a gradient, noise, stripes or checker pattern."""
    a, b = _muted_colour(rng), _muted_colour(rng)
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # linear gradient
        theta = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(theta) + yy * math.sin(theta)) / max(h, w)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        mix = t[..., None]
    elif kind == 1:  # blotchy noise
        mix = (_smooth_noise(rng, h, w, int(rng.integers(3, 9))) + 1) / 2
    elif kind == 2:  # stripes, soft or hard
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(0.04, 0.2) * max(h, w)
        t = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        mix = ((np.sign(t) + 1) / 2 if rng.random() < 0.5 else (t + 1) / 2)[..., None]
    else:  # checker
        cell = rng.uniform(0.05, 0.2) * max(h, w)
        mix = (((xx // cell) + (yy // cell)) % 2)[..., None]
    contrast = rng.uniform(0.3, 1.0)
    bg = a + (b - a) * (mix * contrast)
    bg += _smooth_noise(rng, h, w, 6, channels=3) * rng.uniform(0, 18)
    return bg.astype(np.float32)


def _draw_distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Paint unannotated irregular blobs and lines onto ``image`` (h, w, 3) float32, in place."""
    h, w = image.shape[:2]
    size = max(h, w)
    for _ in range(count):
        blob = rng.random() < 0.55
        if blob:  # irregular blob: noisy radius profile, blurred edges
            n = int(rng.integers(10, 20))
            t = np.sort(rng.uniform(0, 2 * math.pi, n))
            r = rng.uniform(0.03, 0.12) * size * rng.uniform(0.4, 1.3, n)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
            width = 0
        else:  # line or polyline
            pts = rng.uniform(0, 1, size=(int(rng.integers(2, 5)), 2)) * (w, h)
            width = int(rng.integers(1, max(2, size // 64) + 1))
        # Draw only inside the padded bounding box of the distractor, clipped to the image.
        pad = 4 + width
        x0 = max(0, int(pts[:, 0].min()) - pad)
        y0 = max(0, int(pts[:, 1].min()) - pad)
        x1 = min(w, int(pts[:, 0].max()) + pad + 1)
        y1 = min(h, int(pts[:, 1].max()) + pad + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        layer = Image.new("L", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(layer)
        local = [tuple(p) for p in (pts - (x0, y0)).tolist()]
        if blob:
            draw.polygon(local, fill=255)
            layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
        else:
            draw.line(local, fill=255, width=width)
        alpha = np.asarray(layer, dtype=np.float32)[..., None] * (rng.uniform(0.4, 0.9) / 255.0)
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        texture = _smooth_noise(rng, y1 - y0, x1 - x0, int(rng.integers(3, 8)), channels=3) * 40
        region = image[y0:y1, x0:x1]
        region += alpha * (colour + texture - region)


# --------------------------------------------------------------------------------------------------
# One image


@dataclass
class RenderedObject:
    """A placed object: its category index (0-based into the category list) and visible mask (H, W) bool."""

    category_index: int
    mask: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Tight XYXY pixel box of the visible mask (x1, y1 exclusive)."""
        ys, xs = np.nonzero(self.mask)
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def render_image(
    rng: np.random.Generator,
    categories: list[ShapesWorldCategory],
    probabilities: np.ndarray,
    image_size: int = 256,
    world: WorldConfig | None = None,
    min_visible_fraction: float = 0.35,
    min_area_fraction: float = 0.002,
    colour_jitter: float = 14.0,
) -> tuple[np.ndarray, list[RenderedObject]]:
    """Render one image.

    Returns (image, objects): image (H, W, 3) uint8 RGB; objects in paint order, each with its visible
    mask (H, W) bool. Visible masks are disjoint. An object is only placed if it keeps at least
    ``min_visible_fraction`` of its own area (and of every earlier object's area) visible, and at least
    ``min_area_fraction`` of the image; otherwise it is re-posed (a few tries) or skipped, so every
    object drawn is annotated (rather than drawing it and dropping a hidden one). The first object
    fails all tries only for tiny thin shapes in tiny images, so images practically always hold >= 1.
    world: object sizes and counts (``radius_range``, ``max_objects``, ``max_distractors``; None: the
    default world); ``categories`` should come from the same world.
    """
    world = WorldConfig() if world is None else world
    radius_range = world.radius_range
    h = w = int(image_size)
    min_area = max(12.0, min_area_fraction * h * w)
    image = background(rng, h, w)
    _draw_distractors(rng, image, int(rng.integers(0, world.max_distractors + 1)))

    wanted = int(rng.integers(1, world.max_objects + 1))
    chosen = rng.choice(len(categories), size=wanted, p=probabilities)
    objects: list[RenderedObject] = []
    full_areas: list[float] = []
    for cat_index in chosen.tolist():
        cat = categories[cat_index]
        placed = None
        for _attempt in range(12):
            radius = math.exp(rng.uniform(math.log(max(3.5, radius_range[0] * h)), math.log(radius_range[1] * h)))
            aspect = math.exp(rng.uniform(-0.3, 0.3))
            angle = rng.uniform(0, 2 * math.pi)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            alpha, x0, y0 = rasterize_shape(cat.shape, cx, cy, radius, aspect, angle)
            full = float((alpha >= 0.5).sum())
            # Crop the patch to the image.
            px0, py0 = max(0, -x0), max(0, -y0)
            px1 = min(alpha.shape[1], w - x0)
            py1 = min(alpha.shape[0], h - y0)
            if px1 <= px0 or py1 <= py0:
                continue
            crop = alpha[py0:py1, px0:px1]
            mask = np.zeros((h, w), dtype=bool)
            ix0, iy0 = x0 + px0, y0 + py0
            mask[iy0 : iy0 + crop.shape[0], ix0 : ix0 + crop.shape[1]] = crop >= 0.5
            inside = float(mask.sum())
            if inside < min_area or inside < 0.6 * full:
                continue
            if any(
                float((obj.mask & ~mask).sum()) < max(min_area, min_visible_fraction * area)
                for obj, area in zip(objects, full_areas, strict=True)
            ):
                continue
            placed = (crop, ix0, iy0, mask, inside)
            break
        if placed is None:
            continue
        crop, ix0, iy0, mask, inside = placed
        for obj in objects:
            obj.mask &= ~mask
        objects.append(RenderedObject(cat_index, mask))
        full_areas.append(inside)
        paint_object(rng, image, crop, ix0, iy0, COLOURS[cat.colour], colour_jitter)

    image += rng.standard_normal(size=image.shape, dtype=np.float32) * rng.uniform(0.0, 4.0)
    return np.clip(image, 0, 255).round().astype(np.uint8), objects


def paint_object(
    rng: np.random.Generator,
    image: np.ndarray,
    alpha: np.ndarray,
    x0: int,
    y0: int,
    base: tuple[int, int, int],
    jitter: float,
) -> None:
    """Composite a jittered, shaded, lightly textured colour through ``alpha`` at (x0, y0), in place."""
    ph, pw = alpha.shape
    colour = np.asarray(base, dtype=np.float32) * rng.uniform(0.88, 1.08) + rng.normal(0, jitter, 3)
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(theta) + yy * math.sin(theta)) / max(ph, pw) - 0.5  # roughly [-1, 1] / 2
    shade = 1.0 + ramp * rng.uniform(0.0, 0.25)
    fill = colour * shade[..., None] + rng.standard_normal(size=(ph, pw, 3), dtype=np.float32) * rng.uniform(1, 6)
    region = image[y0 : y0 + ph, x0 : x0 + pw]
    region += alpha[..., None] * (np.clip(fill, 0, 255) - region)
