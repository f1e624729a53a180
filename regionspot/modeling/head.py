"""The RegionSpot head: the only trainable module.

Region tokens from the segmenter attend to the vision-language feature map; the result is projected
into the joint image-text space. Parameter names follow the official release (``to_clip``,
``decoder.layers.{i}.{self_attn,multihead_attn,linear1,linear2,norm1,norm2,norm3}``, ``decoder.norm``,
``projector``) so its checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn

from regionspot.config import HeadConfig
from regionspot.modeling.outputs import HeadOutput


class RegionSpotHead(nn.Module):
    """Linear(token→C) → depth × [self-attn among regions; cross-attn to the map; FFN] → LN → Linear(C→D)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        c = config.feature_dim
        self.to_clip = nn.Linear(config.token_dim, c)
        layer = nn.TransformerDecoderLayer(
            c, config.num_heads, config.ffn_dim, config.dropout, activation="relu", batch_first=True, norm_first=False
        )
        self.decoder = nn.TransformerDecoder(layer, config.depth, norm=nn.LayerNorm(c))
        self.projector = nn.Linear(c, config.embed_dim)

    def forward(
        self,
        tokens: torch.Tensor,
        feature_map: torch.Tensor | None,
        padding_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> HeadOutput:
        """Embed regions.

        tokens: (B, N, token_dim) float, position-aware tokens of N regions per image.
        feature_map: (B, T, C) float, vision-language tokens incl. the class token (ignored, may be None,
            when ``use_feature_map`` is False).
        padding_mask: (B, N) bool, True marks padded (absent) regions; they neither attend nor are attended.
        return_attention: also return the cross-attention weights this forward used (``HeadOutput.attention``).
        Returns HeadOutput with region_embeddings (B, N, D), not normalised.
        """
        if tokens.dim() != 3 or tokens.shape[-1] != self.config.token_dim:
            raise ValueError(f"tokens must be (B, N, {self.config.token_dim}); got {tuple(tokens.shape)}.")
        queries = self.to_clip(tokens)  # (B, N, C)
        if self.config.use_feature_map:
            if feature_map is None:
                raise ValueError("This head attends to the vision-language feature map; pass feature_map (B, T, C).")
            if feature_map.shape[-1] != self.config.feature_dim:
                raise ValueError(
                    f"feature_map width {feature_map.shape[-1]} != head feature_dim {self.config.feature_dim}: "
                    "the head was built for another vision-language model."
                )
            memory = feature_map.to(queries.dtype)
            memory_mask = None
        else:
            memory = queries
            memory_mask = padding_mask
        with _CrossAttentionRecorder(self.decoder, enabled=return_attention) as recorder:
            hidden = self.decoder(
                queries, memory, tgt_key_padding_mask=padding_mask, memory_key_padding_mask=memory_mask
            )  # (B, N, C)
        attention = torch.stack(recorder.weights, 1) if return_attention else None  # (B, L, heads, N, T)
        return HeadOutput(region_embeddings=self.projector(hidden), attention=attention)


class _CrossAttentionRecorder:
    """Within a ``with`` block, each decoder layer's cross-attention also returns its weights, unaveraged,
    and they are recorded: the very softmax the layer multiplies the values with in that forward.

    A forward pre-hook asks ``nn.MultiheadAttention`` for its weights (``need_weights=True,
    average_attn_weights=False``; the layer itself keeps only the output) and a forward hook keeps them,
    so the decoder runs its own code: nothing is recomputed. ``weights``: one (B, heads, N, T) per layer.
    """

    def __init__(self, decoder: nn.TransformerDecoder, enabled: bool) -> None:
        self.decoder, self.enabled = decoder, enabled
        self.weights: list[torch.Tensor] = []
        self._handles: list = []

    def __enter__(self) -> _CrossAttentionRecorder:
        if not self.enabled:
            return self
        for layer in self.decoder.layers:
            attention = layer.multihead_attn
            self._handles.append(attention.register_forward_pre_hook(self._ask, with_kwargs=True))
            self._handles.append(attention.register_forward_hook(self._keep))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @staticmethod
    def _ask(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def _keep(self, _module: nn.Module, _args: tuple, output: tuple) -> None:
        self.weights.append(output[1])  # (B, heads, N, T)

