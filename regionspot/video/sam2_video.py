"""The real tracker: a SAM 2 family video model (``Sam2VideoModel``, ``EdgeTamVideoModel``,
``Sam3TrackerVideoModel`` of transformers) propagating each prompted object with its memory of past frames.

Frames are streamed into the model's inference session one at a time (``model(inference_session, frame=...)``),
and the session is pruned after each frame to what the model can still read (the prompt frame's outputs, the
last ``num_maskmem`` frames' memories and ``max_object_pointers_in_encoder`` frames' object pointers), so its
memory does not grow with the video's length.

The token the head reads is the mask decoder's single-mask output token: index 2 of the two-way transformer's
output tokens in this family (after the object-score and IoU tokens; ``Sam2VideoMaskDecoder.forward`` concatenates
``obj_score_token, iou_token, mask_tokens``). It is read by a forward hook on ``mask_decoder.transformer``, not a
fork, and it is token 2 whichever mask the decoder then picks (multimask output, ``dynamic_multimask_via_stability``).

Preprocessing as transformers' Sam2 processors do (which need torchvision): the frame resized to the model's
square input (bilinear), scaled to [0, 1], ImageNet mean/std; prompts scaled per axis to that square.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image

from regionspot.masks.lowres import LowResMasks
from regionspot.masks.resize import MaskFrame
from regionspot.video.propagate import TrackedObjects, check_prompts

SINGLE_MASK_TOKEN = 2  # output tokens: [object score, IoU, single mask, 3 multimask]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_video_model(model_id: str, device: str | torch.device = "cpu"):
    """A SAM 2 family video model from a folder or hub id (offline-aware, ``backbones.hub``), eval, frozen."""
    from transformers import AutoModel

    from regionspot.backbones.hub import from_pretrained

    model = from_pretrained(AutoModel.from_pretrained, model_id, "the video model",
                            "pass a folder or hub id of a SAM 2 family video model (e.g. facebook/sam2.1-hiera-tiny)")
    if not hasattr(model, "propagate_in_video_iterator"):
        from regionspot.errors import CheckpointError

        raise CheckpointError(f"{model_id} is a {type(model).__name__}, not a video model of the SAM 2 family "
                              "(Sam2VideoModel, EdgeTamVideoModel, Sam3TrackerVideoModel).")
    return model.to(device).eval().requires_grad_(False)


def _session_class(model):
    """The inference-session class beside the model's class (``Sam2VideoInferenceSession``, ...)."""
    module = sys.modules[type(model).__module__]
    for name in dir(module):
        if name.endswith("VideoInferenceSession"):
            return getattr(module, name)
    raise TypeError(f"{type(model).__name__} has no video inference session class in {module.__name__}")


class VideoModelPropagator:
    """Track K prompted objects with a SAM 2 family video model (see the module docstring).

    model: a ``Sam2VideoModel`` (or EdgeTAM / SAM 3 tracker video model), eval mode. token_dim: its mask
    decoder's width (256 for the released models).
    """

    def __init__(self, model) -> None:
        self.model = model
        self.side = int(model.config.image_size if isinstance(model.config.image_size, int) else model.config.image_size[0])
        self.token_dim = int(model.mask_decoder.config.hidden_size)
        self.keep = max(int(model.config.num_maskmem), int(model.config.max_object_pointers_in_encoder)) + 1
        self._session = None
        self._frame = -1  # the session's index of the last frame given
        self._size: tuple[int, int] | None = None
        self._captured: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        """(3, S, S) float32 normalised pixels of the model's square input."""
        resized = image.convert("RGB").resize((self.side, self.side), Image.BILINEAR)
        array = torch.from_numpy(np.asarray(resized, np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
        mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
        return ((array - mean) / std).to(self.device)

    def _scale(self, xy: np.ndarray) -> torch.Tensor:
        """(..., 2) XY frame pixels -> the model's square input pixels."""
        height, width = self._size
        return torch.from_numpy(np.asarray(xy, np.float32) * np.array([self.side / width, self.side / height], np.float32))

    def start(self, image: Image.Image, boxes: np.ndarray | None, points: np.ndarray | None) -> TrackedObjects:
        count = check_prompts(boxes, points, (image.height, image.width))
        self._size = (image.height, image.width)
        device = self.device
        self._session = _session_class(self.model)(inference_device=device, inference_state_device=device,
                                                   video_storage_device=device, dtype=torch.float32)
        self._session.video_height, self._session.video_width = self._size
        self._frame = 0
        for k in range(count):
            index = self._session.obj_id_to_idx(k)
            if boxes is not None:
                coords = self._scale(np.asarray(boxes, np.float32).reshape(-1, 2, 2)[k])[None, None]  # (1, 1, 2, 2)
                labels = torch.tensor([[[2, 3]]], dtype=torch.int32)  # box corners, as the processor encodes a box
            else:
                coords = self._scale(np.asarray(points, np.float32).reshape(-1, 2)[k : k + 1])[None, None]  # (1, 1, 1, 2)
                labels = torch.ones((1, 1, 1), dtype=torch.int32)
            self._session.add_point_inputs(index, 0, {"point_coords": coords, "point_labels": labels})
        self._session.obj_with_new_inputs = list(range(count))
        return self._forward(image)

    def step(self, image: Image.Image) -> TrackedObjects:
        if self._session is None:
            raise ValueError("call start() on the prompt frame before step()")
        self._frame += 1
        return self._forward(image)

    @torch.inference_mode()
    def _forward(self, image: Image.Image) -> TrackedObjects:
        self._captured.clear()
        handle = self.model.mask_decoder.transformer.register_forward_hook(self._capture)
        try:
            out = self.model(inference_session=self._session, frame_idx=self._frame, frame=self._pixels(image))
        finally:
            handle.remove()
        count = self._session.get_obj_num()
        if len(self._captured) != count:  # each object decoded once per new frame
            raise RuntimeError(f"expected {count} mask-decoder calls on frame {self._frame}, saw {len(self._captured)}")
        self._prune()
        tokens = torch.cat(self._captured).float().cpu()  # (K, D)
        low_res = out.pred_masks[:, 0].float()  # (K, h, w) logits over the whole square input
        masks = LowResMasks(low_res, MaskFrame(self.side, (self.side, self.side), self._size))
        object_logits = out.object_score_logits.reshape(-1).float().cpu()
        boxes = masks.boxes().astype(np.float32)
        present = (object_logits > 0).numpy() & (boxes[:, 2] > boxes[:, 0])
        return TrackedObjects(tokens, masks, boxes, present, torch.sigmoid(object_logits).numpy())

    def _capture(self, module, args, output) -> None:
        point_embeddings = output[0]  # (B, P, tokens, D); one object per call: B = P = 1
        self._captured.append(point_embeddings[:, :, SINGLE_MASK_TOKEN].reshape(-1, point_embeddings.shape[-1]).detach())

    def _prune(self) -> None:
        """Drop what the model no longer reads: frames' pixels before this one, memories older than ``keep``."""
        session, oldest = self._session, self._frame - self.keep
        for index in [i for i in session.processed_frames if i < self._frame]:
            del session.processed_frames[index]
        for outputs in session.output_dict_per_obj.values():
            for index in [i for i in outputs["non_cond_frame_outputs"] if i < oldest]:
                del outputs["non_cond_frame_outputs"][index]
        for tracked in session.frames_tracked_per_obj.values():
            for index in [i for i in tracked if i < oldest]:
                del tracked[index]

    def held_frames(self) -> int:
        """How many frames' pixels and memories the session holds now (bounded: see :meth:`_prune`)."""
        session = self._session
        memories = max((len(o["non_cond_frame_outputs"]) for o in session.output_dict_per_obj.values()), default=0)
        return len(session.processed_frames) + memories

    def snapshot(self) -> dict | None:
        return None  # the memory bank is tensors of every kept frame: a resumed run replays from the prompt frame

    def restore(self, snapshot: dict) -> None:
        raise ValueError("the video model's memory cannot be restored; replay the frames from the prompt frame")
