"""Exported ONNX folders kept in the model home, so a backend exports a model once and reuses it after.

``$REGIONSPOT_HOME/onnx/<key>/`` holds the five graphs of one model and ``export.json``; ``<key>`` is
:func:`source_key`: the folder format, the regionspot version, and what the weights are — the registered name or path, and each weight
file's size and modification time — read without loading anything, so a reuse costs a few ``stat`` calls, and
replaced weights (or another regionspot version) get a new folder. ``export.json`` records the source and the export's
model key (the ``regionspot.model`` metadata of its graphs); a folder is reused when it is complete and of this
folder format, and the graphs' own metadata is checked again when they are opened (``runtime/graphs.py``).

``$REGIONSPOT_HOME/onnx/int8/<key>/`` holds an int8 copy of a folder (:func:`int8_folder`): ONNX Runtime's
dynamic quantization of the image encoders' and the text tower's matrix products (int8 weights, uint8
activations quantized per call; VNNI / AMX kernels where the CPU has them), keyed by the fp32 graphs' paths,
sizes and modification times. SAM's prompt graph and the head stay fp32, as torch's int8 path leaves the head.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from regionspot.errors import OnnxModelError
from regionspot.export.format import FORMAT, GRAPHS, TOKENIZER_FILE
from regionspot.registry import list_pretrained, resolve_backbone
from regionspot.version import __version__
from regionspot.weights.home import regionspot_home

__all__ = ["INT8_GRAPHS", "cached_export", "int8_folder", "onnx_home", "source_key"]

EXPORT_RECORD = "export.json"
INT8_GRAPHS = ("sam_image_encoder", "clip_feature_map", "text_encoder")  # quantized; the others copied


def onnx_home(home: str | Path | None = None) -> Path:
    """``$REGIONSPOT_HOME/onnx`` (not created here)."""
    return regionspot_home(home) / "onnx"


def _stat_tree(path: Path) -> list:
    """[relative name, size, mtime_ns] of a file, or of every file under a folder; [] for a hub id."""
    if path.is_file():
        stat = path.stat()
        return [[path.name, stat.st_size, stat.st_mtime_ns]]
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    return []


def source_key(weights: str | Path | None = None, segmenter: str | None = None,
               vision_language: str | None = None) -> str:
    """24 hex digits naming the export of these weights (``RegionSpot.from_pretrained``'s arguments): the folder
    format, the regionspot version, the weights' name or path and backbones, and each of their files' size and modification time."""
    name = "shapesworld" if weights is None else str(weights)
    registered = list_pretrained().get(name)
    parts: dict[str, object] = {"format": FORMAT, "version": __version__, "weights": name}
    if registered is not None and registered.head is not None:
        head = Path(registered.head)
        segmenter = resolve_backbone(segmenter, "segmenter") if segmenter else registered.segmenter
        vision_language = resolve_backbone(vision_language, "vision_language") if vision_language else registered.vision_language
    else:
        head = Path(name).expanduser()
        segmenter = resolve_backbone(segmenter, "segmenter") if segmenter else None
        vision_language = resolve_backbone(vision_language, "vision_language") if vision_language else None
    parts["head"] = [str(head.resolve()), _stat_tree(head)]
    for kind, ref in (("segmenter", segmenter), ("vision_language", vision_language)):
        if ref is not None:
            parts[kind] = [str(Path(ref).resolve()) if Path(ref).exists() else ref, _stat_tree(Path(ref))]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _complete(folder: Path) -> bool:
    try:
        record = json.loads((folder / EXPORT_RECORD).read_text())
    except (OSError, ValueError):
        return False
    files = [spec.file for spec in GRAPHS.values()] + [TOKENIZER_FILE]
    return record.get("format") == FORMAT and all((folder / f).is_file() for f in files)


def cached_export(weights: str | Path | None = None, segmenter: str | None = None, vision_language: str | None = None,
                  home: str | Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """The folder of these weights' ONNX export in the model home, exported (on the CPU, with torch) if there is
    none yet; ``log`` is told before an export starts. Raises what ``RegionSpot.from_pretrained`` and
    ``export_onnx`` raise (unknown weights, a model the export does not support, the exporter missing)."""
    key = source_key(weights, segmenter, vision_language)
    folder = onnx_home(home) / key
    if _complete(folder):
        return folder
    from regionspot.export.onnx import export_onnx, model_key, require_exporter
    from regionspot.model import RegionSpot

    require_exporter()
    if log is not None:
        log(f"exporting the model to ONNX once, into {folder}")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its per-tensor "Loading weights" bars, between our lines
    model = RegionSpot.from_pretrained(weights, segmenter=segmenter, vision_language=vision_language, device="cpu")
    partial = folder.with_name(f"{key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    export_onnx(model, partial)
    record = {"format": FORMAT, "version": __version__, "model": model_key(model),
              "source": {"weights": None if weights is None else str(weights), "segmenter": segmenter,
                         "vision_language": vision_language}}
    (partial / EXPORT_RECORD).write_text(json.dumps(record, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def int8_folder(folder: str | Path, home: str | Path | None = None,
                log: Callable[[str], None] | None = None) -> Path:
    """An int8 copy of the exported folder ``folder`` (see the module's notes), made once in the model home.
    Raises OnnxModelError when ``folder`` lacks a graph, or onnx (which the quantizer needs) is missing."""
    folder = Path(folder).resolve()
    sources = [folder / spec.file for spec in GRAPHS.values()] + [folder / TOKENIZER_FILE]
    missing = [p for p in sources if not p.is_file()]
    if missing:
        raise OnnxModelError(f"{missing[0]} is missing; export the model again with `regionspot export onnx --out {folder}`.")
    identity = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sources]
    key = hashlib.sha256(json.dumps([FORMAT, identity]).encode()).hexdigest()[:24]
    out = onnx_home(home) / "int8" / key
    if (out / EXPORT_RECORD).is_file():
        return out
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise OnnxModelError(f"The int8 backend quantizes the graphs with onnxruntime and onnx ({error.name} is "
                             "missing): pip install 'regionspot[onnx]'.") from None
    if log is not None:
        log(f"quantizing the ONNX graphs to int8 once, into {out}")
    partial = out.with_name(f"{key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantizer's "consider pre-processing" advice: noise
    try:
        for name in INT8_GRAPHS:
            quantize_dynamic(folder / GRAPHS[name].file, partial / GRAPHS[name].file,
                             op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    finally:
        root.level = level
    for name, spec in GRAPHS.items():
        if name not in INT8_GRAPHS:
            shutil.copyfile(folder / spec.file, partial / spec.file)
    shutil.copyfile(folder / TOKENIZER_FILE, partial / TOKENIZER_FILE)
    (partial / EXPORT_RECORD).write_text(json.dumps({"format": FORMAT, "version": __version__, "int8_of": str(folder),
                                                     "quantized": list(INT8_GRAPHS)}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
