"""The exported graphs' rows of ``benchmarks/speed/speed.py``: the same stages as the torch paths, timed on the ONNX
backends (ONNX Runtime fp32 / int8, OpenVINO fp32 / bf16) through the torch-free runtime's own calls.

A backend's stages are what ``regionspot predict --backend NAME`` runs: the SAM and CLIP image graphs with their
numpy preprocessing, the prompt graph (chunks of the runtime's ``chunk_size`` prompts) with the masks made at full
size from its low-resolution logits (as the torch path's "masks at full size" row), the prompt graph alone, the
head graph, and the text graph over every (name, template) prompt.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from speed_tools import best_time

BACKEND_PATHS = ("onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16")


def export_folders(head: Path, home: Path, wanted: list[str]) -> dict[str, Path]:
    """The exported fp32 folder (and its int8 copy when an int8 backend is wanted) of the head at ``head``, made
    once under ``home`` (a rerun with the same work folder reuses them)."""
    from regionspot.export.cache import cached_export, int8_folder

    fp32 = cached_export(head, home=home, log=print)
    folders = {"fp32": fp32}
    if any(name.endswith("int8") for name in wanted):
        folders["int8"] = int8_folder(fp32, home=home, log=print)
    return folders


def backend_rows(name: str, folders: dict[str, Path], image, boxes: np.ndarray, counts: list[int],
                 text: np.ndarray, prompts_names: list[str], threads: int, repeats: int) -> dict[str, float]:
    """Seconds per stage of backend ``name`` (keys as ``speed._stage_rows``); ``text``: the (V, D) class embeddings
    the head scores against (the torch model's, so every path scores the same vocabulary)."""
    from regionspot.inference.backends import backend_spec
    from regionspot.runtime import OnnxRegionSpot
    from regionspot.runtime.postprocess import upsample_mask_logits
    from regionspot.runtime.prompts import validate_boxes

    spec = backend_spec(name)
    runtime = OnnxRegionSpot(folders["int8" if spec.int8 else "fp32"], threads=threads, engine=spec.engine,
                             precision=spec.precision)
    rows = {"sam_encoder": best_time(lambda: runtime.graphs.run("sam_image_encoder", pixels=runtime.sam_pixels(image)[0]), repeats),
            "clip_map": best_time(lambda: runtime.graphs.run("clip_feature_map", pixels=runtime.clip_pixels(image)), repeats)}
    runtime.set_image(image)
    runtime.set_vocabulary([f"class {i}" for i in range(len(text))], text_embeddings=text)
    height, width = image.height, image.width
    frame = (runtime.sam["pad_size"], runtime._reshaped, (height, width))

    def with_masks(part: np.ndarray) -> None:
        _, _, low_res = runtime.decode(part)
        for i in range(len(low_res)):  # one region at a time, as the library's masks are made
            upsample_mask_logits(low_res[i : i + 1], *frame)

    for n in counts:
        part = validate_boxes(boxes[:n], height, width)
        rows[f"decoder_masks_{n}"] = best_time(lambda p=part: with_masks(p), repeats)
        rows[f"decoder_nomask_{n}"] = best_time(lambda p=part: runtime.decode(p), repeats)
        tokens = runtime.decode(part)[0]
        rows[f"head_{n}"] = best_time(lambda t=tokens: runtime.head_logits(t), repeats)
    start = time.perf_counter()
    runtime.text_embeddings(prompts_names)
    rows["text"] = time.perf_counter() - start
    return rows
