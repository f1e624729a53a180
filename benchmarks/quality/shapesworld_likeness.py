"""How the embedded model's "does not look like ShapesWorld" test splits renders from photos and textures.

Rows: ShapesWorld renders (both worlds, train and val streams), the photos shipped inside installed packages
(matplotlib's sample photo always; gradio's demo photos when the [demo] extra is installed; any image files
given with --photos), random crops of those photos (half to nine tenths of each side), and synthetic 1/f
colour textures. Columns: how many the test calls like / unlike ShapesWorld.

    python benchmarks/quality/shapesworld_likeness.py --per-stream 100 --crops 12 --textures 20
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from regionspot.shapesworld.likeness import (
    MAX_PALETTE,
    MAX_TEXTURE,
    calibration_renders,
    measure_likeness,
    pink_noise_image,
)


def packaged_photos() -> list[Path]:
    """Photos that ship inside installed packages (files that are photographs, not icons or plots)."""
    found = []
    import matplotlib.cbook

    found.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    spec = importlib.util.find_spec("gradio")
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent
        names = ["media_assets/images/cheetah.jpg", "media_assets/images/cheetah1.jpg", "media_assets/images/lion.jpg",
                 "media_assets/images/tower.jpg", "media_assets/images/groot.jpeg", "test_data/cheetah2.jpg"]
        found.extend(root / name for name in names if (root / name).is_file())
    return found


def crops(image: Image.Image, count: int, rng: np.random.Generator) -> list[Image.Image]:
    out = []
    for _ in range(count):
        share = rng.uniform(0.5, 0.9)
        w, h = int(image.width * share), int(image.height * share)
        x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
        out.append(image.crop((x, y, x + w, y + h)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-stream", type=int, default=100, help="renders per world x split (4 of them)")
    parser.add_argument("--crops", type=int, default=12, help="random crops per photo")
    parser.add_argument("--textures", type=int, default=20, help="1/f colour textures")
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more photo files")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    photo_paths = packaged_photos() + list(args.photos)
    photos = [Image.open(p).convert("RGB") for p in photo_paths]
    rows = {
        "ShapesWorld renders (v1, v2 x train, val)": [im for _, im in calibration_renders(args.per_stream)],
        f"photos ({len(photos)} files)": photos,
        f"crops of the photos ({args.crops} each)": [c for im in photos for c in crops(im, args.crops, rng)],
        "1/f colour textures": [pink_noise_image(rng) for _ in range(args.textures)],
    }
    print(f"limits: palette <= {MAX_PALETTE} colour bins, texture <= {MAX_TEXTURE} grey levels")
    print("| set | images | like | unlike |\n|---|---:|---:|---:|")
    for name, images in rows.items():
        like = sum(measure_likeness(im).like for im in images)
        print(f"| {name} | {len(images)} | {like} | {len(images) - like} |")
    print("\nphotos called like:", ", ".join(p.name for p, im in zip(photo_paths, photos) if measure_likeness(im).like) or "none")


if __name__ == "__main__":
    main()
