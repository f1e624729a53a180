"""Backends: what runs the model's graphs for ``predict`` — PyTorch, or the exported ONNX graphs under ONNX Runtime
or OpenVINO — behind one interface, so a command's steps call one object whichever runs.

A backend (:class:`Backend`) is a predictor: ``set_image``, ``set_vocabulary``, ``predict`` (boxes and/or
points -> ``RegionResult``, with the logits), ``predict_everything`` and ``image``. The names
(:data:`BACKENDS`):

- ``torch``: ``RegionSpotPredictor`` on the PyTorch model (every feature; ``--fast`` numerics apply);
- ``onnxruntime``: the exported fp32 graphs under ONNX Runtime (``runtime.OnnxRegionSpot``);
- ``onnxruntime-int8``: the same with the encoders' matrix products dynamically quantized to int8
  (``export/cache.int8_folder``);
- ``openvino``: the exported fp32 graphs compiled by OpenVINO (f32 inference precision);
- ``openvino-bf16``: OpenVINO with bf16 inference precision (native on AVX-512 BF16 / AMX CPUs).

The ONNX backends label the regions they are given (boxes, points); everything mode (the segmenter's own
proposals) and attention maps need the torch backend. Importing this module imports no torch (the names
are checked before anything loads); the backends import what they run, and the ONNX ones never import torch or
transformers (their results, masks, JSON and pictures are made in numpy; ``tests/cli/test_startup.py``). Each backend's agreement with torch fp32 is measured by
the accuracy guard (``evaluation/backend_guard.py``); ``benchmarks/speed/backends.py`` prints it with the speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from regionspot.errors import RegionSpotError

if TYPE_CHECKING:
    from regionspot.data.images import ImageLike
    from regionspot.inference.results import RegionResult

__all__ = ["BACKENDS", "Backend", "BackendSpec", "OnnxBackend", "backend_spec", "onnx_folder", "open_backend"]


@dataclass(frozen=True)
class BackendSpec:
    """One backend: engine None (PyTorch), "onnxruntime" or "openvino"; precision "fp32" or "bf16" (OpenVINO);
    int8: the int8 copy of the exported graphs."""

    name: str
    engine: str | None
    precision: str = "fp32"
    int8: bool = False


BACKENDS: dict[str, BackendSpec] = {spec.name: spec for spec in (
    BackendSpec("torch", None),
    BackendSpec("onnxruntime", "onnxruntime"),
    BackendSpec("onnxruntime-int8", "onnxruntime", int8=True),
    BackendSpec("openvino", "openvino"),
    BackendSpec("openvino-bf16", "openvino", precision="bf16"),
)}


def backend_spec(name: str) -> BackendSpec:
    """The backend ``name``; RegionSpotError (one line listing them) for another name."""
    if name not in BACKENDS:
        raise RegionSpotError(f"`backend` must be one of {', '.join(BACKENDS)}; got {name!r}.")
    return BACKENDS[name]


class Backend(Protocol):
    """What a command asks of a backend (``RegionSpotPredictor`` is the torch one)."""

    backend: str
    reject: bool  # mark regions that are none of the vocabulary's classes (RegionResult.known)

    @property
    def image(self): ...

    def set_image(self, image: ImageLike) -> None: ...

    def set_vocabulary(self, class_names: list[str]) -> None: ...

    def predict(self, boxes=None, points=None, point_labels=None, top_k: int = 5, return_masks: bool = True,
                return_attention: bool = False) -> RegionResult: ...

    def predict_everything(self, options=None, top_k: int = 5, return_masks: bool = True,
                           return_attention: bool = False, region_filter=None) -> RegionResult: ...


class OnnxBackend:
    """The exported graphs of ``folder`` as a backend (``spec``: an ONNX backend of :data:`BACKENDS`).

    threads: intra-op threads per graph (0: the engine's default). text_cache_dir: where class-name embeddings
    are kept, one ``.npy`` per (model, backend, names) (None: ``$REGIONSPOT_HOME/onnx/text``; False: not kept). Raises
    OnnxModelError for a folder that is missing, incomplete or of another format or model, and when the engine
    is not installed.
    """

    def __init__(self, folder: str | Path, spec: BackendSpec, threads: int = 0,
                 text_cache_dir: str | Path | bool | None = None) -> None:
        from regionspot.runtime import OnnxRegionSpot

        if spec.engine is None:
            raise ValueError(f"{spec.name} is not an ONNX backend.")
        self.backend = spec.name
        self.folder = Path(folder)
        self.runtime = OnnxRegionSpot(self.folder, threads=threads, engine=spec.engine, precision=spec.precision)
        self._image = None
        if text_cache_dir is None:
            from regionspot.export.cache import onnx_home

            text_cache_dir = onnx_home() / "text"
        self.text_cache_dir = Path(text_cache_dir) if text_cache_dir is not False else None

    @property
    def image(self):
        return self._image

    @property
    def reject(self) -> bool:
        """Whether regions that are none of the vocabulary's classes are marked (``RegionResult.known``)."""
        return self.runtime.reject

    @reject.setter
    def reject(self, value: bool) -> None:
        self.runtime.reject = bool(value)

    @property
    def vocabulary(self) -> list[str] | None:
        return self.runtime.vocabulary

    def set_image(self, image: ImageLike) -> None:
        """Decode ``image`` (path, PIL or HWC array; EXIF applied) and run both image graphs on it once."""
        from regionspot.data.images import load_image

        picture = load_image(image)
        self.runtime.set_image(picture)
        self._image = picture

    def set_vocabulary(self, class_names, templates=None) -> None:
        """Embed the class names (the head's own templates) for every following ``predict``."""
        if templates is not None:
            raise RegionSpotError("The ONNX backends embed names with the templates exported with the head; "
                                  "other `templates` need `backend` torch.")
        names = list(class_names)
        path = None
        if self.text_cache_dir is not None:
            # the backend too: an int8 or bf16 text tower embeds the same graphs' names differently
            key = hashlib.sha256(json.dumps([self.runtime.graphs.model, self.backend, names]).encode()).hexdigest()[:32]
            path = self.text_cache_dir / f"{key}.npy"
        embeddings = np.load(path) if path is not None and path.is_file() else None
        self.runtime.set_vocabulary(names, text_embeddings=embeddings)
        if path is not None and embeddings is None:
            _save_quietly(path, self.runtime.vocabulary_embeddings)

    def predict(self, boxes=None, points=None, point_labels=None, top_k: int = 5, return_masks: bool = True,
                return_attention: bool = False) -> RegionResult:
        """As ``RegionSpotPredictor.predict``: boxes (N, 4) XYXY and/or points (N, P, 2) xy (labels (N, P)),
        original-image pixels -> RegionResult with the logits; masks when asked as ``LowResMasks`` upsampled in
        numpy (``kernel="numpy"``: the runtime's own full-size masks, pixel for pixel; no torch)."""
        from regionspot.inference.results import RegionResult, prompt_records
        from regionspot.masks.lowres import LowResMasks
        from regionspot.masks.resize import MaskFrame

        if return_attention:
            raise RegionSpotError("Attention maps (`explain`) need `backend` torch.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            regions = self.runtime.predict(boxes=boxes, points=points, point_labels=point_labels, top_k=top_k,
                                           return_masks=return_masks)
        messages = [str(w.message) for w in caught]
        for message in messages:
            warnings.warn(message, stacklevel=2)
        point_array, label_array = _points(points, point_labels)
        box_array = None if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        masks = None
        if return_masks and regions.low_res_masks is not None:
            pad, reshaped = regions.mask_frame
            masks = LowResMasks(regions.low_res_masks, MaskFrame(pad, tuple(reshaped), regions.image_size), kernel="numpy")
        return RegionResult(
            boxes=regions.boxes.astype(np.float32), labels=regions.labels, class_ids=regions.class_ids.astype(np.int64),
            scores=regions.scores, probs=regions.probs, topk_ids=regions.topk_ids, topk_scores=regions.topk_scores,
            iou=regions.iou.astype(np.float32), vocabulary=list(regions.vocabulary), image_size=regions.image_size,
            masks=masks, messages=messages, confidence=regions.confidence,
            topk_confidence=regions.topk_confidence,
            points=point_array, prompts=prompt_records(box_array, point_array, label_array), logits=regions.logits,
            rejection_score=regions.rejection_score, known=regions.known, rejection=regions.rejection,
        )

    def predict_everything(self, options=None, top_k: int = 5, return_masks: bool = True,
                           return_attention: bool = False, region_filter=None) -> RegionResult:
        raise RegionSpotError("Everything mode (the segmenter's own proposals) runs on `backend` torch; "
                              "give `boxes` or `points` to use an ONNX backend.")


def _save_quietly(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.npy) atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
        np.save(partial, array)
        partial.replace(path)
    except OSError:
        pass


def _points(points, point_labels) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(N, P, 2) float32 points and (N, P) int64 labels (default 1) as ``predict`` takes them; None, None."""
    if points is None:
        return None, None
    array = np.asarray(points, np.float32)
    array = array[:, None, :] if array.ndim == 2 else array
    labels = np.ones(array.shape[:2], np.int64) if point_labels is None else np.asarray(point_labels, np.int64)
    return array, labels.reshape(array.shape[:2])


def onnx_folder(spec: BackendSpec, weights: str | Path | None = None, segmenter: str | None = None,
                vision_language: str | None = None, onnx_dir: str | Path | None = None, log=None) -> Path:
    """The folder of graphs backend ``spec`` runs: ``onnx_dir`` as given, else the weights' export kept in the
    model home (made on first use); for int8, its int8 copy (made on first use)."""
    from regionspot.export.cache import cached_export, int8_folder

    folder = Path(onnx_dir) if onnx_dir is not None else cached_export(weights, segmenter, vision_language, log=log)
    return int8_folder(folder, log=log) if spec.int8 else folder


def open_backend(name: str, weights: str | Path | None = None, *, segmenter: str | None = None,
                 vision_language: str | None = None, onnx_dir: str | Path | None = None, device: str | None = None,
                 fast_path: str | None = None, threads: int = 0, text_cache_dir: str | Path | bool | None = None,
                 log=None) -> Backend:
    """A ready backend ``name`` for these weights (``RegionSpot.from_pretrained``'s arguments). torch: the model
    on ``device`` (default cpu) with ``fast_path`` numerics. ONNX backends: the graphs of ``onnx_dir``, else of
    the weights' export kept in the model home (``log`` is told when an export or quantization starts).
    text_cache_dir: where class-name embeddings are kept (None: each backend's default; False: not kept)."""
    spec = backend_spec(name)
    if spec.engine is None:
        from regionspot.inference.predictor import RegionSpotPredictor
        from regionspot.model import RegionSpot

        model = RegionSpot.from_pretrained(weights, segmenter=segmenter, vision_language=vision_language,
                                           device=device or "cpu", fast_path=fast_path)
        return RegionSpotPredictor(model, text_cache_dir=text_cache_dir)
    if device not in (None, "cpu") or fast_path not in (None, "fp32"):
        raise RegionSpotError(f"`backend` {name} runs on the CPU in its own numerics; drop `device` and `fast` "
                              "(or use `backend` torch).")
    folder = onnx_folder(spec, weights, segmenter, vision_language, onnx_dir, log=log)
    return OnnxBackend(folder, spec, threads=threads, text_cache_dir=text_cache_dir)
