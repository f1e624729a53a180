"""RegionSpot: frozen segmenter + frozen vision-language model + the trained head."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.backbones.hub import looks_like_path
from regionspot.checkpoint import find_head_file, load_head_checkpoint, load_head_state, save_head_checkpoint
from regionspot.config import RegionSpotConfig
from regionspot.errors import CheckpointError
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.outputs import RegionSpotOutput
from regionspot.modeling.scoring import score_regions
from regionspot.registry import list_pretrained, resolve_backbone


def _warn_other_weights(recorded: dict, model: RegionSpot, source: Path) -> None:
    """Warn when the vision-language weights differ from those the head recorded (its fingerprint; the
    segmenter's is recorded too, but computing it costs seconds per load, so it is not checked here)."""
    for kind in ("vision_language",):
        expected, part = recorded.get(kind), getattr(model, kind)
        found = getattr(part, "weights_fingerprint", "")
        if expected and found and expected != found:
            warnings.warn(
                f"{source} was trained with {kind} weights {expected}, but {part.model_id} has {found}; results may "
                f"differ (pass the head's own backbone with --{'sam' if kind == 'segmenter' else 'clip'}).",
                stacklevel=3,
            )


class RegionSpot(nn.Module):
    """The whole model. Only ``head`` has trainable parameters; the backbones are frozen adapters.

    Build with :meth:`from_pretrained` (a registered name, a head checkpoint, or an official ``.pth``)
    or :meth:`from_config` (random head). Constructor arguments are built parts (habit 3).
    """

    def __init__(
        self, *, segmenter: Segmenter, vision_language: VisionLanguage, head: RegionSpotHead, config: RegionSpotConfig
    ) -> None:
        super().__init__()
        if head.config.feature_dim != vision_language.feature_dim or head.config.embed_dim != vision_language.embed_dim:
            raise CheckpointError(
                f"The head expects a vision-language model with feature width {head.config.feature_dim} and embedding "
                f"width {head.config.embed_dim}, but {vision_language.model_id} has {vision_language.feature_dim} and "
                f"{vision_language.embed_dim}: the checkpoint is of another variant (pass the matching --clip)."
            )
        if head.config.token_dim != segmenter.token_dim:
            raise CheckpointError(
                f"The head expects {head.config.token_dim}-wide segmenter tokens but {segmenter.model_id} gives "
                f"{segmenter.token_dim}: pass the matching --sam."
            )
        self.segmenter = segmenter
        self.vision_language = vision_language
        self.head = head
        self.config = config
        self.fast_path = "fp32"  # the backbones' numerics: set_numerics

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: RegionSpotConfig, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> RegionSpot:
        """Load the frozen backbones named by ``config`` (registered names, hub ids or folders, see
        ``regionspot.registry.resolve_backbone``; run with its ``preprocess``) and build a random head."""
        from regionspot.backbones.segmenter import load_segmenter
        from regionspot.backbones.vision_language import load_vision_language

        pre = config.preprocess
        segmenter = load_segmenter(resolve_backbone(config.segmenter, "segmenter"), device=device, dtype=dtype,
                                   decoder_layer_norm_eps=pre.sam_decoder_eps)
        vision_language = load_vision_language(
            resolve_backbone(config.vision_language, "vision_language"), image_size=config.image_size, device=device, dtype=dtype,
            resize=pre.clip_resize, antialias=pre.clip_antialias,
        )
        head = RegionSpotHead(config.head)
        model = cls(segmenter=segmenter, vision_language=vision_language, head=head, config=config)
        model.head.to(device=vision_language.device)
        return model

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        segmenter: str | None = None,
        vision_language: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        fast_path: str | None = None,
    ) -> RegionSpot:
        """Load a trained RegionSpot.

        name_or_path: None (the embedded ShapesWorld model), a registered name (``regionspot.list_models()``),
            a regionspot head ``.safetensors``, a model folder (``head.safetensors``), a training run folder
            (its final head, or its latest checkpoint while it runs), or an official RegionSpot ``.pth``
            (converted on the fly).
        segmenter / vision_language: override the backbones recorded in the checkpoint (a registered name such as
            "shapesworld" or "BL", a hub id, or a folder).
        fast_path: the backbones' numerics (:meth:`set_numerics`): None / "fp32" (default, most accurate), "bf16",
            "int8", "eager", "compile" (fp32 through ``torch.compile``: for long runs). The fastest one whose
            accuracy guard passed on this machine: ``regionspot.inference.fast.resolve_fast_path("auto", device)``.
        """
        registry = list_pretrained()
        name = "shapesworld" if name_or_path is None else str(name_or_path)
        if name in registry:
            weights = registry[name]
            if weights.head is None:
                raise CheckpointError(
                    f"{name} is not downloaded: run `regionspot download {name}` (or, with the files fetched by other "
                    f"means, `regionspot download {name} --from DIR`)."
                )
            path = Path(weights.head)
            if not path.is_file():
                if weights.folder is not None:
                    raise CheckpointError(f"The download of {name} in {weights.folder} is incomplete: run `regionspot download {name}` again.")
                raise CheckpointError(
                    f"The embedded {name} weights are missing from this install ({path}); reinstall regionspot or "
                    "rebuild them with `regionspot shapesworld build`."
                )
            segmenter = segmenter or weights.segmenter
            vision_language = vision_language or weights.vision_language
        else:
            path = Path(name)
            if not path.exists() and name.count("/") == 1 and not looks_like_path(name):
                raise CheckpointError(
                    f"{name} is neither a file nor a downloaded model: run `regionspot download {name}` to fetch it "
                    f"(`regionspot models` lists what is downloaded)."
                )
            if path.is_dir():
                path = find_head_file(path)
        state, config, meta = load_head_checkpoint(path)
        config.segmenter = segmenter or config.segmenter
        config.vision_language = vision_language or config.vision_language
        model = cls.from_config(config, device=device, dtype=dtype)
        load_head_state(model.head, state, source=str(path))
        recorded = meta.get("backbone_fingerprints") or {}
        _warn_other_weights({k: v for k, v in recorded.items() if not {"segmenter": segmenter,
                                                                       "vision_language": vision_language}.get(k)},
                            model, path)
        model.eval()
        if fast_path is not None:
            model.set_numerics(fast_path)
        return model

    def set_numerics(self, mode: str) -> str:
        """Run both frozen backbones in numerics ``mode`` (``backbones.numerics.NUMERICS``), in place; recorded
        as ``fast_path``. Returns the fingerprint suffix of ``mode`` ("+bf16" / "+int8", else ""), which both
        backbones' ``weights_fingerprint`` then end in (text embeddings computed in a lossy mode are cached
        apart). int8 and compile cannot be switched back. Raises ValueError for an unknown mode ("auto" is
        chosen by ``regionspot.inference.fast.resolve_fast_path``), RegionSpotError for a mode the device
        cannot run."""
        if mode == "auto":
            raise ValueError("fast_path='auto' is chosen from this machine's accuracy-guard verdicts: pass "
                             "regionspot.inference.fast.resolve_fast_path('auto', device) instead.")
        suffix = self.segmenter.set_numerics(mode)
        self.vision_language.set_numerics(mode)
        self.fast_path = mode
        return suffix

    def save_pretrained(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write the head (only) + config; the frozen backbones are referenced by name, hub id or a folder
        relative to ``path``, with their weights fingerprints."""
        prints = {kind: getattr(getattr(self, kind), "weights_fingerprint", "") for kind in ("segmenter", "vision_language")}
        return save_head_checkpoint(path, self.head, self.config, {"backbone_fingerprints": prints, **(meta or {})})

    # --- computation -----------------------------------------------------------------------------
    @property
    def logit_scale(self) -> float:
        return self.vision_language.logit_scale

    @property
    def logit_bias(self) -> float | None:
        """The vision-language model's logit bias (SigLIP's sigmoid form), None for a model without one (CLIP)."""
        return getattr(self.vision_language, "logit_bias", None)

    def forward(
        self,
        tokens: torch.Tensor,
        feature_map: torch.Tensor | None,
        text_embeddings: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> RegionSpotOutput:
        """tokens (B, N, 256), feature_map (B, T, C), text_embeddings (V, D) L2-normalised, padding_mask
        (B, N) bool (True = padding) → RegionSpotOutput with logits (B, N, V) float32 (and, with
        ``return_attention``, the head's cross-attention weights (B, L, heads, N, T) of this forward):
        :func:`regionspot.modeling.scoring.score_regions` with the vision-language model's logit scale (and
        bias, for a sigmoid-trained model)."""
        return score_regions(self.head, tokens, feature_map, text_embeddings, self.logit_scale, padding_mask,
                             return_attention=return_attention, logit_bias=self.logit_bias)

    def text_embeddings(
        self, class_names: Sequence[str], templates: str | list[str] | None = None, cache_dir: str | Path | None = None,
        show_progress: bool = True,
    ) -> torch.Tensor:
        """(V, D) L2-normalised text embeddings of ``class_names`` with the config's template ensemble and
        class-name handling (``config.preprocess.class_names``)."""
        from regionspot.text.embeddings import class_text_embeddings

        return class_text_embeddings(
            self.vision_language, list(class_names), templates=templates or self.config.templates,
            cache_dir=cache_dir, show_progress=show_progress, name_style=self.config.preprocess.class_names,
        )
