"""``GuardOptions``: every option of ``regionspot guard``, the one list of them (the guard itself is
``evaluation/guard.py``). Imports no torch, so ``regionspot guard --help`` answers at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regionspot.errors import RegionSpotError

__all__ = ["GuardOptions"]


@dataclass
class GuardOptions:
    """Every option of ``regionspot guard``: which fast paths to check against fp32, on which labelled set.

    data / images: a COCO file and its image root (None: the ShapesWorld CI subset with the embedded model);
    model: the model for ``data`` (a registered name or head; None: the embedded one); num_images: the set's
    first N labelled images; paths: the fast paths to guard (empty: this machine's candidates); backends: guard
    these ONNX backends against the torch backend instead (their verdicts are what ``--backend auto`` reads).
    """

    data: Path | None = None
    images: Path | None = None
    model: str | None = None
    num_images: int = 16
    paths: tuple[str, ...] = ()
    device: str = "cpu"
    backends: tuple[str, ...] = ()

    def validate(self) -> None:
        if (self.data is None) != (self.images is None):
            raise RegionSpotError("`data` and `images` go together: a COCO file and the folder of its images.")
        if self.model is not None and self.data is None:
            raise RegionSpotError("`model` is guarded on your own set: pass `data` and `images` too.")
        if self.backends and self.paths:
            raise RegionSpotError("Guard fast paths (`paths`) or backends (`backends`), one kind per run.")
        if self.backends and self.device != "cpu":
            raise RegionSpotError("The ONNX backends run on the CPU; drop `device` to guard them.")
        if self.backends:
            from regionspot.inference.backends import BACKENDS

            for name in self.backends:
                if name not in BACKENDS:
                    raise RegionSpotError(f"`backends` must be one of {', '.join(BACKENDS)}; got {name!r}.")
                if BACKENDS[name].engine is None:
                    raise RegionSpotError(f"`backends` {name} is the reference itself; guard an ONNX backend "
                                          "(onnxruntime, onnxruntime-int8, openvino, openvino-bf16).")
        if self.num_images < 1:
            raise RegionSpotError(f"`num_images` must be >= 1, got {self.num_images}.")

    def chosen_paths(self) -> list[str]:
        """The paths to guard: those asked for, else this machine's candidates."""
        from regionspot.inference.fast import candidate_paths

        return list(self.paths) or [p for p in candidate_paths(self.device) if p != "fp32"]
