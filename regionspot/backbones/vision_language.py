"""The frozen CLIP adapter (also MetaCLIP 2, the same architecture) and the loader of every vision-language
model, implementing the ``VisionLanguage`` protocol.

``load_vision_language(model_id)`` reads a transformers model (hub id or local ``save_pretrained``
folder), picks its adapter by the config's ``model_type`` (``VISION_LANGUAGE_TYPES``: the SigLIP / SigLIP 2
adapters live in ``backbones/siglip.py``, TIPSv2 in ``backbones/tips.py``), freezes it and wraps it:

- ``feature_map(images)``: (B, T, C) float32 vision tokens, class token first (CLIP), taken BEFORE the
  vision post-layernorm (CLIP's ``last_hidden_state``; bit-identical to the official RegionSpot map).
- ``encode_image(images)``: (B, D) float32 L2-normalised image embeddings (the standard CLIP path:
  post-layernorm + visual projection), used by the crop baselines.
- ``encode_text(prompts)``: (P, D) float32 L2-normalised text embeddings. Prompts are tokenised once,
  sorted by token length and padded per batch to the longest prompt in that batch (not to 77), which
  gives the same embeddings as one-at-a-time encoding (the text transformer is causal) at a fraction
  of the cost.

Images are resized as a whole to ``image_size`` × ``image_size`` (no crop) and normalised with the
model's mean/std; ``preprocess_images`` (``backbones/clip_inputs.py``) is that one function. The resize is a choice that a head
checkpoint records (``PreprocessConfig.clip_resize``): "pil" resizes the uint8 pixels with PIL and the
filter of the model's ``preprocessor_config.json`` (CLIP: bicubic; regionspot's default), and
"torch-bilinear" resizes the float pixels with ``F.interpolate(mode="bilinear", align_corners=False)``
as the released RegionSpot code does.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from regionspot.backbones.clip_inputs import clip_preprocessor_stats, preprocess_images
from regionspot.backbones.constants import CLIP_MEAN, CLIP_STD
from regionspot.backbones.hub import cached_file_or_none, from_pretrained
from regionspot.backbones.numerics import switch_numerics
from regionspot.config import CLIP_RESIZES
from regionspot.errors import (
    CheckpointError,
    PromptTruncatedWarning,
    WeightsNotFoundError,
    preview,
)
from regionspot.utils.fingerprint import weights_fingerprint
from regionspot.utils.fingerprint_cache import cached_weights_fingerprint, weight_files
from regionspot.utils.progress import progress_bar

_FIX_HINT = (
    "run `regionspot download BB|BL|BL@336` (CLIP included; add `--from DIR` for files fetched by other means), "
    "pass a local folder saved with save_pretrained, or convert an OpenAI checkpoint with "
    "`regionspot convert clip ViT-L-14.pt --out DIR` and pass DIR"
)


# model_type (config.json) -> (transformers model class, module under regionspot.backbones, adapter class).
VISION_LANGUAGE_TYPES: dict[str, tuple[str, str, str]] = {
    "clip": ("CLIPModel", "vision_language", "ClipAdapter"),
    "metaclip_2": ("MetaClip2Model", "vision_language", "ClipAdapter"),
    "siglip": ("SiglipModel", "siglip", "SiglipAdapter"),
    "siglip2": ("Siglip2Model", "siglip", "Siglip2Adapter"),
    "tipsv2": ("Tipsv2Model", "tips", "TipsAdapter"),
}

_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model")


def _side(size: int | Sequence[int]) -> int:
    """The side of a square size given as an int or an (h, w) pair (a non-square pair is refused)."""
    if isinstance(size, int):
        return size
    height, width = (int(v) for v in size)
    if height != width:
        raise CheckpointError(f"A vision-language model with a non-square input ({height}x{width}) is not supported.")
    return height


class ClipAdapter:
    """A frozen transformers ``CLIPModel`` (or ``MetaClip2Model``, the same architecture) seen through the ``VisionLanguage`` protocol.

    model: a CLIPModel (frozen here: ``requires_grad_(False)``, ``eval()``).
    tokenizer: a CLIP tokenizer, or None (then ``encode_text`` raises CheckpointError).
    image_size: input side in pixels; a size other than the model's uses position interpolation.
    mean / std / resample: the image normalisation and the PIL resize filter.
    resize / antialias: how images become the square input ("pil" or "torch-bilinear"; see
        ``preprocess_images``).
    fingerprint: the weights fingerprint when already known (else computed from the model).
    """

    has_class_token = True
    scoring_form = "softmax"  # how the model's own logits become probabilities (modeling.scoring.SCORING_FORMS)
    default_templates = "imagenet"  # the template set recommended for this model (text.templates)
    # (mean, std, PIL filter) when the folder has no preprocessor_config.json
    preprocess_defaults = (CLIP_MEAN, CLIP_STD, int(Image.Resampling.BICUBIC))

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer=None,
        model_id: str = "",
        image_size: int | None = None,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        resample: int = int(Image.Resampling.BICUBIC),
        resize: str = "pil",
        antialias: bool = False,
        fingerprint: str | None = None,
    ):
        if resize not in CLIP_RESIZES:
            raise ValueError(f"resize must be one of {list(CLIP_RESIZES)}, got {resize!r}.")
        self.model = model.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        self.model_id = str(model_id)
        vision_config = model.config.vision_config
        text_config = model.config.text_config
        self.patch_size = _side(vision_config.patch_size)
        self.native_image_size = self._native_image_size(vision_config)
        self.image_size = int(image_size or self.native_image_size)
        if self.image_size < self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is smaller than the patch size {self.patch_size}."
            )
        self.feature_dim = int(vision_config.hidden_size)
        self.embed_dim = self._embed_dim(model.config)
        self.context_length = int(text_config.max_position_embeddings)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.resample = int(resample)
        self.resize = resize
        self.antialias = bool(antialias)
        self.weights_fingerprint = fingerprint or weights_fingerprint(model)
        self._numerics, self._numerics_suffix = "fp32", ""

    @staticmethod
    def _embed_dim(config) -> int:
        return int(config.projection_dim)

    @staticmethod
    def _native_image_size(vision_config) -> int:
        return _side(vision_config.image_size)

    # -- properties -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def logit_scale(self) -> float:
        """exp of the model's learned logit scale (CLIP: 100.0)."""
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def num_tokens(self) -> int:
        """T, the number of feature-map tokens at ``image_size`` (incl. the class token)."""
        grid = self.image_size // self.patch_size
        return grid * grid + int(self.has_class_token)

    def set_numerics(self, mode: str) -> str:
        """Run in numerics ``mode`` (``backbones.numerics.NUMERICS``); returns its fingerprint suffix, which
        ``weights_fingerprint`` then ends in (text embeddings computed in a lossy mode are cached apart).
        bf16 / int8: the vision and text towers; compile: the vision tower (text batches change length)."""
        vision, text = self.model.vision_model, self.model.text_model
        suffix = switch_numerics(self.model, mode, self._numerics, self.device, bf16=(vision, text),
                                 int8=(vision, text), compiled=(vision,))
        self.weights_fingerprint = self.weights_fingerprint.removesuffix(self._numerics_suffix) + suffix
        self._numerics, self._numerics_suffix = mode, suffix
        return suffix

    # -- images -----------------------------------------------------------------------------------
    def input_preprocessor(self, size: int | None = None) -> Callable[[Sequence[Image.Image]], torch.Tensor]:
        """``preprocess_images`` with this model's settings, picklable (for data-loader worker processes):
        B images -> (B, 3, S, S) float32 CPU pixels, S = ``size`` or ``image_size`` (what ``feature_map``
        takes); ``encode_image`` takes them at ``native_image_size``."""
        return functools.partial(preprocess_images, size=size or self.image_size, mean=self.mean, std=self.std,
                                 resample=self.resample, resize=self.resize, antialias=self.antialias)

    def preprocess(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) pixels on the model's device and dtype; see ``preprocess_images``. Pixels already
        prepared (a float32 tensor from ``input_preprocessor()``, pinned or not) are only moved."""
        pixels = images if isinstance(images, torch.Tensor) else self.input_preprocessor()(images)
        return pixels.to(device=self.device, dtype=self.dtype, non_blocking=True)

    @property
    def _interpolate(self) -> bool:
        return self.image_size != self.native_image_size

    @torch.no_grad()
    def feature_map(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, T, C) float32: vision tokens incl. the class token, before the post-layernorm.

        images: PIL images, or their (B, 3, S, S) pixels from ``input_preprocessor()``.
        """
        pixels = self.preprocess(images)
        outputs = self.model.vision_model(pixel_values=pixels, interpolate_pos_encoding=self._interpolate)
        return outputs.last_hidden_state.float()

    @torch.no_grad()
    def encode_image(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, D) float32, L2-normalised image embeddings: the standard CLIP path, each image resized without
        crop to the model's *native* input size, whatever ``image_size`` the feature map is read at (so the
        crop baselines score the same with or without a head's larger map). Prepared (B, 3, S, S) pixels
        are taken only when S is that native size."""
        if isinstance(images, torch.Tensor):
            if images.shape[-1] != self.native_image_size or images.shape[-2] != self.native_image_size:
                raise ValueError(f"encode_image takes pixels at the native size {self.native_image_size}, "
                                 f"got {tuple(images.shape)}; pass the PIL images instead.")
            pixels = images
        else:
            pixels = self.input_preprocessor(self.native_image_size)(images)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return F.normalize(self._image_embeddings(pixels).float(), dim=-1)

    def _image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, D) raw image embeddings of (B, 3, S, S) pixels at the native size (the model's own image path)."""
        return self.model.get_image_features(pixel_values=pixels).pooler_output

    # -- text -------------------------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt incl. start/end tokens, truncated to ``context_length``.

        Truncation keeps the first ``context_length - 1`` tokens and the end token, and emits ONE
        ``PromptTruncatedWarning`` listing the affected prompts.
        """
        if self.tokenizer is None:
            raise CheckpointError(
                f"{self.model_id!r} has no tokenizer: copy a CLIP tokenizer into the folder or re-run "
                "`regionspot convert clip ... --tokenizer DIR`."
            )
        ids = self.tokenizer(list(prompts), add_special_tokens=True, truncation=False)["input_ids"]
        truncated = []
        for index, row in enumerate(ids):
            if len(row) > self.context_length:
                ids[index] = list(row[: self.context_length - 1]) + [row[-1]]
                truncated.append(prompts[index])
        if truncated:
            warnings.warn(
                PromptTruncatedWarning(
                    f"{len(truncated)} prompt(s) are longer than the text encoder's {self.context_length} tokens "
                    f"and were truncated: {preview(truncated)}.",
                    truncated,
                ),
                stacklevel=3,
            )
        return ids

    def _pad_length(self, longest: int) -> int:
        return longest

    def _pad_batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-id rows -> (input_ids, attention_mask), both (B, L) int64: right-padded with the pad token (the
        end token when there is none) to L = ``_pad_length(longest row)``."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        length = self._pad_length(max(len(row) for row in rows))
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = torch.tensor(row)
            attention_mask[index, : len(row)] = 1
        return input_ids, attention_mask

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    @torch.no_grad()
    def encode_text(
        self,
        prompts: Sequence[str],
        batch_size: int = 256,
        normalize: bool = True,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """(P, D) float32 text embeddings, one per prompt, in the input order.

        normalize: L2-normalise each embedding (the protocol's contract). ``False`` returns the raw
            projections, which the class-ensemble code averages as the official RegionSpot does.
        show_progress: a tqdm bar; None shows it for more than 8 batches.
        """
        if isinstance(prompts, str):
            raise TypeError("encode_text takes a list of prompts, not one string.")
        prompts = list(prompts)
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"Prompt #{index} is a {type(prompt).__name__}, not a string.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if not prompts:
            return torch.zeros(0, self.embed_dim)
        ids = self.tokenize(prompts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), self.embed_dim)
        num_batches = math.ceil(len(ids) / batch_size)
        if show_progress is None:
            show_progress = num_batches > 8
        for start in progress_bar(
            range(0, len(ids), batch_size),
            total=num_batches,
            desc="text",
            disable=not show_progress,
            leave=False,
        ):
            index = order[start : start + batch_size]
            input_ids, attention_mask = self._pad_batch([ids[i] for i in index])
            mask = attention_mask.to(self.device) if attention_mask is not None else None
            features = self._text_features(input_ids.to(self.device), mask)
            out[index] = features.float().cpu()
        return F.normalize(out, dim=-1) if normalize else out


def load_vision_language(
    model_id: str,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    resize: str = "pil",
    antialias: bool = False,
) -> ClipAdapter:
    """Load a frozen vision-language model (``VISION_LANGUAGE_TYPES``: CLIP, MetaCLIP 2, SigLIP, SigLIP 2,
    TIPSv2) as a ``VisionLanguage`` adapter, chosen by the config's ``model_type``.

    model_id: a hub id (``openai/clip-vit-large-patch14``, ``google/siglip2-...``) or a local folder
        written by ``save_pretrained`` (or ``regionspot convert clip``). The local cache is tried first;
        the hub only when ``HF_HUB_OFFLINE`` is not set.
    image_size: input side in pixels (default: the model's); e.g. 336 from a 224 model interpolates the
        position embeddings.
    device / dtype: where and in what precision the frozen model lives (default: CPU, checkpoint dtype).
    resize / antialias: the image resize ("pil" with the model's filter, or the released code's
        "torch-bilinear"); a head's ``PreprocessConfig`` says which it was trained with.
    Raises WeightsNotFoundError (one line naming the fix) when the weights cannot be reached, CheckpointError
    for a model type that is not one of ``VISION_LANGUAGE_TYPES``.
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    model_id = str(model_id)
    config = from_pretrained(AutoConfig.from_pretrained, model_id, "the config", _FIX_HINT)
    model_type = getattr(config, "model_type", "")
    if model_type not in VISION_LANGUAGE_TYPES:
        raise CheckpointError(
            f"{model_id!r} is a {model_type!r} model; regionspot reads these vision-language models: "
            f"{', '.join(VISION_LANGUAGE_TYPES)} (pass a folder or hub id of one of them)."
        )
    class_name, module, adapter_name = VISION_LANGUAGE_TYPES[model_type]
    model_cls = getattr(transformers, class_name)
    adapter_cls = getattr(importlib.import_module(f"regionspot.backbones.{module}"), adapter_name)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = from_pretrained(model_cls.from_pretrained, model_id, "the weights", _FIX_HINT, **kwargs)
    tokenizer = None
    folder = Path(model_id)
    has_files = not folder.is_dir() or any((folder / name).is_file() for name in _TOKENIZER_FILES)
    if has_files:
        try:
            tokenizer = from_pretrained(AutoTokenizer.from_pretrained, model_id, "the tokenizer", _FIX_HINT)
        except WeightsNotFoundError:
            tokenizer = None
    # transformers v5 builds an (almost empty) tokenizer even without vocabulary files: reject it.
    if tokenizer is not None and len(tokenizer) < 16:
        tokenizer = None
    if tokenizer is None:
        warnings.warn(
            f"{model_id!r} has no tokenizer: image features work, encode_text will not "
            "(re-run `regionspot convert clip ... --tokenizer DIR`).",
            stacklevel=2,
        )
    if device is not None:
        model = model.to(device)
    mean, std, resample = clip_preprocessor_stats(model_id, adapter_cls.preprocess_defaults)
    weights = cached_file_or_none(model_id, "config.json")
    fingerprint = cached_weights_fingerprint(model, weight_files(Path(weights).parent if weights else None))
    return adapter_cls(
        model, tokenizer, model_id=model_id, image_size=image_size, mean=mean, std=std, resample=resample,
        resize=resize, antialias=antialias, fingerprint=fingerprint,
    )
