"""SAM's vision attention with its decomposed relative-position bias added a chunk of query rows at a time, the
switch between it and transformers' eager class, and the decoder's token-major inputs.

transformers' SDPA path for SAM (and SAM-HQ) builds the whole bias, (B, heads, H·W, H·W), from two small
factors and hands it to ``scaled_dot_product_attention`` as a mask. For ViT-B's global-attention layers at
1024² that is 12 × 4096 × 4096 floats (805 MB) per image and layer, and on a CPU the tensor comes out of a
broadcast add in a transposed layout, so ``reshape`` copies it once more: the add and the copy took longer
than the attention itself (`docs/performance.md`). Here the two factors are made contiguous, and the
bias is built for a band of query rows at a time — about ``CHUNK_ELEMENTS`` floats — and consumed right away
by SDPA on those rows. The result is the same tensor: the same einsums and adds produce each bias value,
and SDPA computes every query row independently of the others (bit-identical on the CPU, checked in
``tests/backbones/test_sam_attention.py``). The bias held at once stays near ``CHUNK_ELEMENTS`` floats (one query
row of all B images at the least) instead of B × heads × (H·W)².
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionspot.utils.precision import set_attention

__all__ = [
    "CHUNK_ELEMENTS",
    "chunked_rel_pos_classes",
    "one_image_token_major",
    "rel_pos_sdpa",
    "set_sam_attention",
    "use_chunked_bias",
    "vision_attention_classes",
]

# Largest bias chunk, in elements (256 MB of float32). Every chunk re-reads all keys and values, so chunks
# of a few query rows are slower on a CPU (64 chunks of one row: +0.15 s per ViT-B global layer); a third
# of the bias at a time costs nothing measurable and bounds the memory of batched images.
CHUNK_ELEMENTS = 1 << 26


def rel_pos_sdpa(attention: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """SAM vision attention forward with a chunked relative-position bias.

    attention: a transformers ``SamVisionAttention`` (or SAM-HQ's) module — its ``qkv``, ``proj``,
    ``num_attention_heads``, ``use_rel_pos``, ``rel_pos_h`` / ``rel_pos_w`` and ``get_rel_pos`` are used.
    hidden_states: (B, H, W, C) tokens of B images (or B windows) on an H × W grid → (B, H, W, C).
    """
    batch, height, width, _ = hidden_states.shape
    heads, tokens = attention.num_attention_heads, height * width
    qkv = attention.qkv(hidden_states).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    query, key, value = qkv.reshape(3, batch * heads, tokens, -1).unbind(0)  # each (B·heads, H·W, C/heads)
    dim = query.shape[-1]
    q4, k4, v4 = (t.view(batch, heads, tokens, dim) for t in (query, key, value))
    if not attention.use_rel_pos:
        out = F.scaled_dot_product_attention(q4, k4, v4)
    else:
        rel_h, rel_w = _rel_pos_factors(attention, query, height, width)
        out = torch.empty_like(q4)
        # traced for export: one band, so the graph's shapes follow its dynamic batch (the band count depends on it)
        chunks = 1 if torch.jit.is_tracing() else -(-batch * heads * tokens * tokens // CHUNK_ELEMENTS)
        rows = -(-height // chunks)
        for start in range(0, height, rows):
            stop = min(height, start + rows)
            bias = (rel_h[:, start:stop, :, :, None] + rel_w[:, start:stop, :, None, :])
            bias = bias.view(batch, heads, (stop - start) * width, tokens)
            part = slice(start * width, stop * width)
            out[:, :, part] = F.scaled_dot_product_attention(q4[:, :, part], k4, v4, attn_mask=bias)
    out = out.view(batch, heads, height, width, dim).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
    return attention.proj(out)


def _rel_pos_factors(attention: nn.Module, query: torch.Tensor, height: int,
                     width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two factors of SAM's decomposed bias, contiguous: rel_h (B·heads, H, W, H) — query (h, w) against
    key row k — and rel_w (B·heads, H, W, W) — query (h, w) against key column k. bias = rel_h[..., :, None]
    + rel_w[..., None, :] over the key grid, as in transformers' ``get_decomposed_rel_pos``."""
    table_h = attention.get_rel_pos(height, height, attention.rel_pos_h)  # (H, H, C)
    table_w = attention.get_rel_pos(width, width, attention.rel_pos_w)  # (W, W, C)
    grid = query.reshape(query.shape[0], height, width, -1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", grid, table_h).contiguous()
    rel_w = torch.einsum("bhwc,wkc->bhwk", grid, table_w).contiguous()
    return rel_h, rel_w


def _forward(self, hidden_states: torch.Tensor, output_attentions: bool = False) -> tuple[torch.Tensor, None]:
    return rel_pos_sdpa(self, hidden_states), None


_FAMILIES: list[dict[str, type]] = []


def vision_attention_classes() -> list[dict[str, type]]:
    """Per SAM family (SAM, SAM-HQ): {"eager": transformers' eager vision-attention class, "transformers-sdpa":
    its SDPA class, "sdpa": our chunked-bias subclass of it (same parameters and state dict; only ``forward``
    differs)}. Built once per process."""
    if not _FAMILIES:
        for module_name, table in (("sam.modeling_sam", "SAM_VISION_ATTENTION_CLASSES"),
                                   ("sam_hq.modeling_sam_hq", "SAM_HQ_VISION_ATTENTION_CLASSES")):
            try:
                classes = getattr(__import__(f"transformers.models.{module_name}", fromlist=[table]), table)
            except (ImportError, AttributeError):  # pragma: no cover - both ship with the pinned transformers
                continue
            base = classes["sdpa"]
            chunked = type(f"Chunked{base.__name__}", (base,), {"forward": _forward, "__module__": __name__})
            _FAMILIES.append({"eager": classes["eager"], "transformers-sdpa": base, "sdpa": chunked})
    return _FAMILIES


def chunked_rel_pos_classes() -> dict[type, type]:
    """transformers' SDPA vision-attention classes of SAM and SAM-HQ → their chunked-bias subclasses."""
    return {family["transformers-sdpa"]: family["sdpa"] for family in vision_attention_classes()}


def use_chunked_bias(model: nn.Module) -> nn.Module:
    """Re-class every transformers SDPA vision-attention layer of a SAM / SAM-HQ ``model`` (in place; also
    returned) to its chunked-bias subclass. Eager layers are left alone."""
    classes = chunked_rel_pos_classes()
    for sub in model.modules():
        target = classes.get(type(sub))
        if target is not None:
            sub.__class__ = target
    return model


def set_sam_attention(model: nn.Module, implementation: str) -> nn.Module:
    """Switch a SAM / SAM-HQ ``model`` to ``"eager"`` or ``"sdpa"`` attention in place (also returned).

    The attention layers that look the implementation up at call time follow the config
    (``utils.precision.set_attention``); SAM's vision attention picks its class at construction, so its
    layers are re-classed (same parameters): to transformers' eager class, or for "sdpa" to our chunked-bias
    subclass (the same result as transformers' SDPA class without its dense bias).
    """
    set_attention(model, implementation)
    families = vision_attention_classes()
    for sub in model.modules():
        for family in families:
            if type(sub) in family.values():
                sub.__class__ = family[implementation]
    return model


def one_image_token_major(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook (``with_kwargs=True``) for SAM's two-way transformer when all its N prompts come from one
    image without mask prompts: its ``image_embeddings`` and ``image_positional_embeddings`` (N, C, h, w) are then
    N copies of the same map. The transformer reads them as tokens, ``flatten(2).transpose(1, 2)`` — a strided
    view of a channels-first tensor, so every add and projection on it first gathered N × h·w × C floats. Here
    the first copy is laid out channels-last (token-major) and expanded over the N prompts: the same values, no
    per-prompt copies, contiguous token rows. The caller guarantees the one-image, no-mask-prompt condition.
    """
    embeddings, positional = kwargs.get("image_embeddings"), kwargs.get("image_positional_embeddings")
    if embeddings is None or positional is None or embeddings.dim() != 4 or positional.shape != embeddings.shape:
        return None
    kwargs = dict(kwargs)
    for name, tensor in (("image_embeddings", embeddings), ("image_positional_embeddings", positional)):
        kwargs[name] = tensor[:1].contiguous(memory_format=torch.channels_last).expand_as(tensor)
    return args, kwargs
