"""Measuring helpers for ``benchmarks/speed/speed.py``: GEMM peak, FLOP counting (CPU SDPA included), timing,
and the plain reference pipeline (straight transformers calls, fp32, eager, one decoder call, full-size masks).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

aten = torch.ops.aten
_REGISTERED = False


def register_cpu_sdpa() -> None:
    """Teach torch's FLOP counter the CPU SDPA kernels (it knows only the CUDA ones), once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    from torch.utils.flop_counter import flop_registry

    targets = [aten._scaled_dot_product_flash_attention_for_cpu]
    fused = getattr(aten, "_scaled_dot_product_fused_attention_overrideable", None)
    if fused is not None:
        targets.append(fused)
    targets = [t for t in targets if t not in flop_registry]

    def cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    if targets:
        register_flop_formula(targets)(cpu_sdpa_flop)
    _REGISTERED = True


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs (multiply-add = 2) that ``fn()`` runs, counted by ``FlopCounterMode``."""
    register_cpu_sdpa()
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_peak(dtype: torch.dtype, size: int = 1024, seconds: float = 1.5,
              shape: tuple[int, int, int] | None = None) -> float:
    """Measured GFLOP/s of a square ``size``² matmul (or an (m, k) @ (k, n) one for ``shape`` = (m, k, n)) in
    ``dtype`` at the current thread count, over one ``seconds`` window. One reading: see :func:`gemm_peak_probe`."""
    m, k, n = shape or (size, size, size)
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - start) / 1e9


# The probe's (m, k, n) shapes: square 1024 and 2048, and the pipeline's own big GEMMs — SAM ViT-B's MLP (4096 tokens
# × 768 → 3072) and CLIP ViT-L/14's MLP at 224² (257 tokens × 1024 → 4096). A peak read from one shape can sit
# below what the pipeline itself reaches (25 vs ~28 GFLOP/s in one run), which makes "÷ floor" ratios < 1.
GEMM_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (4096, 768, 3072), (257, 1024, 4096))


def gemm_peak_probe(dtype: torch.dtype, shapes: tuple[tuple[int, int, int], ...] = GEMM_SHAPES, repeats: int = 3,
                    seconds: float = 0.4) -> dict:
    """A robust GEMM peak: every shape of ``shapes`` measured ``repeats`` times (``seconds`` windows, the shapes
    interleaved so a slow moment of the machine does not sink one shape), the best reading per shape kept.

    Returns {"gflops": the best over shapes, "shape": "m×k×n" of that one, "per_shape": {"m×k×n": GFLOP/s},
    "repeats": repeats}. Take it
    before and after the measured stages and use the larger (:func:`best_peak`)."""
    per_shape = {f"{m}×{k}×{n}": 0.0 for m, k, n in shapes}
    for _ in range(repeats):
        for shape in shapes:
            key = "×".join(map(str, shape))
            per_shape[key] = max(per_shape[key], gemm_peak(dtype, seconds=seconds, shape=shape))
    best = max(per_shape, key=per_shape.get)
    return {"gflops": per_shape[best], "shape": best, "per_shape": per_shape, "repeats": repeats}


def best_peak(*probes: dict) -> float:
    """The largest GFLOP/s of several :func:`gemm_peak_probe` readings (before and after the stages)."""
    return max(probe["gflops"] for probe in probes)


def cpu_flag_line() -> str:
    """AVX2 / AVX-512 / BF16 / AMX flags of this CPU, from /proc/cpuinfo."""
    from regionspot.utils.cpu import cpu_flags

    return ", ".join(sorted(cpu_flags())) or "unknown"


def cpu_model() -> str:
    """This CPU's model name (``regionspot.utils.cpu``)."""
    from regionspot.utils.cpu import cpu_model as model

    return model()


# ------------------------------------------------------------------------------- reference pipeline
class ReferencePipeline:
    """Straight transformers calls in fp32 with eager attention: SAM image embeddings, one decoder call for
    all boxes with masks upsampled to the full image, the CLIP vision tower, the text tower padded to the
    full context in input order. Preprocessing is the adapters' (the same pixels as the library path)."""

    def __init__(self, model) -> None:
        model.set_numerics("eager")
        self.model = model
        self.sam = model.segmenter.model
        self.clip = model.vision_language.model

    def encode_image(self, image) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        pixels, original, resized = self.model.segmenter.preprocess_image(image)
        return self.sam.get_image_embeddings(pixels), original, resized

    def feature_map(self, image) -> torch.Tensor:
        pixels = self.model.vision_language.preprocess([image])
        return self.clip.vision_model(pixel_values=pixels).last_hidden_state

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor, original: tuple[int, int],
               resized: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes (N, 4) XYXY original pixels → tokens (N, 256) and masks (N, H, W) bool at full size."""
        captured = {}
        handle = self.sam.mask_decoder.transformer.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("q", out[0]))
        scale = torch.tensor([resized[1] / original[1], resized[0] / original[0]] * 2)
        try:
            out = self.sam(image_embeddings=embeddings, input_boxes=(boxes * scale)[None], multimask_output=False)
        finally:
            handle.remove()
        side = self.model.segmenter.preprocess.pad_size
        masks = F.interpolate(out.pred_masks[0], (side, side), mode="bilinear", align_corners=False)  # (N, 1, S, S)
        masks = F.interpolate(masks[..., : resized[0], : resized[1]], original, mode="bilinear", align_corners=False)
        return captured["q"][0][:, 1], masks[:, 0] > 0

    def encode_text(self, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
        """(P, D): every prompt padded to the context length (77), batches in input order."""
        adapter = self.model.vision_language
        tokens = adapter.tokenizer(prompts, padding="max_length", max_length=adapter.context_length,
                                   truncation=True, return_tensors="pt")
        out = []
        for start in range(0, len(prompts), batch_size):
            part = slice(start, start + batch_size)
            out.append(self.clip.get_text_features(input_ids=tokens["input_ids"][part],
                                                   attention_mask=tokens["attention_mask"][part]).pooler_output)
        return F.normalize(torch.cat(out), dim=-1)
