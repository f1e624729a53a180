"""A ShapesWorld clip: shapes of the embedded model's world moving over a fixed background, frame by frame.

Each object is a random category of the world (distinct categories), drawn with the world's own rasteriser and
painter (``shapes.rasterize_shape``, ``world.paint_object``: the same colour, shading and texture on every frame)
and moved in a straight line at a few pixels per frame, turning slowly and bouncing off the walls of its own cell
of a 2×2 grid: objects never cross, so a simple tracker can follow them. The ground truth per frame is each
object's class and visible mask.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from regionspot.shapesworld.shapes import rasterize_shape
from regionspot.shapesworld.streams import VIDEO_MOTION, VIDEO_NOISE, VIDEO_OBJECT_PAINT, stream_rng
from regionspot.shapesworld.world import (
    COLOURS,
    WORLD_PRESETS,
    RenderedObject,
    WorldConfig,
    background,
    paint_object,
)

CLIP_WORLD = WORLD_PRESETS["v2"]  # the embedded model's world
MAX_OBJECTS = 4  # one per cell of a 2x2 grid


@dataclass
class MovingShape:
    """One object: category index into the world's categories, its cell (x0, y0, x1, y1) in pixels, centre and
    velocity (pixels per frame), radius, aspect, angle and spin (radians per frame)."""

    category_index: int
    cell: tuple[float, float, float, float]
    centre: np.ndarray
    velocity: np.ndarray
    radius: float
    aspect: float
    angle: float
    spin: float

    def advance(self) -> None:
        """One frame on: move, turn, and bounce off the cell's walls (the whole shape stays inside)."""
        self.centre = self.centre + self.velocity
        self.angle += self.spin
        low = np.array(self.cell[:2]) + self.radius
        high = np.array(self.cell[2:]) - self.radius
        for axis in (0, 1):
            if not low[axis] <= self.centre[axis] <= high[axis]:
                self.velocity[axis] = -self.velocity[axis]
                self.centre[axis] = float(np.clip(self.centre[axis], low[axis], high[axis]))


def clip_shapes(rng: np.random.Generator, objects: int, size: int, world: WorldConfig) -> list[MovingShape]:
    """``objects`` (1..4) moving shapes of distinct random categories, one per cell of a 2x2 grid."""
    if not 1 <= objects <= MAX_OBJECTS:
        raise ValueError(f"a clip holds 1..{MAX_OBJECTS} objects, got {objects}")
    categories = world.categories(0)
    chosen = rng.choice(len(categories), size=objects, replace=False)
    half = size / 2
    cells = [(x * half, y * half, (x + 1) * half, (y + 1) * half) for y in (0, 1) for x in (0, 1)]
    shapes = []
    for k, cell in zip(rng.permutation(len(cells))[:objects], range(objects)):
        box = cells[int(k)]
        radius = float(rng.uniform(world.radius_range[0] * size, 0.3 * half))
        centre = np.array([rng.uniform(box[0] + radius, box[2] - radius), rng.uniform(box[1] + radius, box[3] - radius)])
        heading = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(1.5, 4.0)
        shapes.append(MovingShape(int(chosen[cell]), box, centre, speed * np.array([math.cos(heading), math.sin(heading)]),
                                  radius, math.exp(rng.uniform(-0.2, 0.2)), rng.uniform(0, 2 * math.pi),
                                  rng.uniform(-0.05, 0.05)))
    return shapes


def render_clip(frames: int = 24, objects: int = 3, size: int = 256, seed: int = 0,
                world: WorldConfig = CLIP_WORLD) -> Iterator[tuple[np.ndarray, list[RenderedObject]]]:
    """The clip's frames one at a time: (image (size, size, 3) uint8 RGB, its objects with their visible masks),
    objects in the order of :func:`clip_shapes`."""
    rng = stream_rng(seed, VIDEO_MOTION)
    shapes = clip_shapes(rng, objects, size, world)
    categories = world.categories(0)
    ground = background(rng, size, size)
    for index in range(frames):
        image = ground.copy()
        rendered = []
        for k, shape in enumerate(shapes):
            alpha, x0, y0 = rasterize_shape(categories[shape.category_index].shape, *shape.centre, shape.radius,
                                            shape.aspect, shape.angle)
            alpha, x0, y0 = _crop(alpha, x0, y0, size)
            mask = np.zeros((size, size), bool)
            mask[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]] = alpha >= 0.5
            paint_object(stream_rng(seed, VIDEO_OBJECT_PAINT, k), image, alpha, x0, y0,
                         COLOURS[categories[shape.category_index].colour], 14.0)
            rendered.append(RenderedObject(shape.category_index, mask))
        noise = stream_rng(seed, VIDEO_NOISE, index).standard_normal(image.shape, dtype=np.float32) * 2.0
        yield np.clip(image + noise, 0, 255).round().astype(np.uint8), rendered
        for shape in shapes:
            shape.advance()


def _crop(alpha: np.ndarray, x0: int, y0: int, size: int) -> tuple[np.ndarray, int, int]:
    px0, py0 = max(0, -x0), max(0, -y0)
    px1, py1 = min(alpha.shape[1], size - x0), min(alpha.shape[0], size - y0)
    return alpha[py0:py1, px0:px1], x0 + px0, y0 + py0


def write_clip(out: str | Path, frames: int = 24, objects: int = 3, size: int = 256, seed: int = 0,
               video: bool = False) -> dict:
    """Write the clip: ``OUT/frames/NNNNNN.png``, ``OUT/clip.json`` (the class of each object, its box on every frame,
    and the ``--boxes`` string of frame 0) and, with ``video``, ``OUT/clip.mp4`` (needs the [video] extra).
    Returns the clip.json content."""
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    categories = CLIP_WORLD.categories(0)
    boxes: list[list[list[float]]] = []
    names: list[str] = []
    for index, (image, rendered) in enumerate(render_clip(frames, objects, size, seed)):
        Image.fromarray(image).save(out / "frames" / f"{index:06d}.png")
        boxes.append([list(obj.box) for obj in rendered])
        names = [categories[obj.category_index].name for obj in rendered]
    spec = {"frames": frames, "size": size, "seed": seed, "classes": names, "boxes_per_frame": boxes,
            "boxes_option": "; ".join(",".join(f"{v:g}" for v in box) for box in boxes[0])}
    (out / "clip.json").write_text(json.dumps(spec, indent=1))
    if video:
        from regionspot.video.frames import write_video

        write_video((Image.open(p) for p in sorted((out / "frames").glob("*.png"))), out / "clip.mp4", fps=10)
    return spec
