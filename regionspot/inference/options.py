"""``PredictOptions``: everything ``regionspot predict`` is asked, the one list of its options.

The command line fills it field by field (its parameters are these fields; ``cli/options.py`` knows the
flags), so a script can build the same request in Python. Prompts and class names stay as given (strings and
files); the command reads them. Messages name fields in backticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regionspot.errors import ImageError, PromptError, RegionSpotError, VocabularyError
from regionspot.inference.proposal_options import ProposalOptions
from regionspot.inference.region_filter import RegionFilter

OUTPUT_FORMATS = ("json", "coco")


@dataclass
class PredictOptions:
    """What to label, with which model, and what to write.

    images: image files, folders or globs (None: the bundled ShapesWorld example).
    vocab / vocab_file / vocab_preset: the class names: comma-separated, a file with one per line, or a
        preset (coco, lvis, shapesworld); at most one (None: the embedded model's own).
    boxes / boxes_json / points: prompts as typed ('x1,y1,x2,y2; ...' read in ``box_format``, "xyxy" or
        "xywh"), a JSON file of boxes, or 'x,y; ...' points, in original-image pixels. prompts_file: many
        images: a JSON file of per-image prompts, or a COCO file. everything: no prompts, the segmenter
        proposes the regions (``grid``: its point grid side; ``max_regions``, ``min_confidence``, ``nms_iou``,
        ``nms_per_class``: which proposals are shown, see ``RegionFilter``).
    out / output_format / masks: one image: the result JSON; many: a folder of them ("coco": also one COCO
        results file); masks: put each region's mask (COCO RLE) in the JSON. viz / no_viz: the picture
        (one image: its path) or none. explain / explain_regions / explain_per_layer: the attention maps'
        picture, for the first regions, last layer or every layer.
    model / head: registered weights, or a head file (not both; None: the embedded model).
        segmenter / vision_language: backbone overrides (registered name, hub id or folder).
    reject: mark regions that are none of the vocabulary's classes as unknown (``RegionResult.known``; everything
        mode leaves them out) with the head's calibrated rejection threshold (``regionspot calibrate``); a head
        without one labels every region. On by default. top_k: classes per region. device: None: the best available. fast: the fastest numerics that passed
        their accuracy guard here. max_megapixels: the largest image file decoded (None: PIL's limit).
    backend: what runs the model (``inference.backends.BACKENDS``): "torch", or the exported ONNX graphs under
        "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16" (given regions only; CPU); "auto": the
        fastest backend that passed ``regionspot guard --backend`` on this machine for this model, torch otherwise
        (``inference/backend_choice.py``; :meth:`resolve_backend`). onnx: the folder of exported graphs an ONNX
        backend runs (None: the weights' export kept in the model home).
    """

    images: list[Path] | None = None
    vocab: str | None = None
    vocab_file: Path | None = None
    vocab_preset: str | None = None
    boxes: str | None = None
    box_format: str = "xyxy"
    boxes_json: Path | None = None
    points: str | None = None
    prompts_file: Path | None = None
    everything: bool = False
    out: Path | None = None
    output_format: str = "json"
    masks: bool = False
    viz: Path | None = None
    no_viz: bool = False
    explain: Path | None = None
    explain_regions: int = 6
    explain_per_layer: bool = False
    model: str | None = None
    segmenter: str | None = None
    vision_language: str | None = None
    head: str | None = None
    top_k: int = 3
    reject: bool = True
    grid: int = 16
    max_regions: int = 100
    min_confidence: float = RegionFilter.min_confidence
    nms_iou: float = RegionFilter.nms_iou
    nms_per_class: bool = False
    device: str | None = None
    fast: bool = False
    max_megapixels: float | None = None
    backend: str = "auto"
    onnx: Path | None = None

    def validate(self) -> None:
        """Raise one user error naming the field (in backticks) of the first bad value; reads no file."""
        for name in ("top_k", "grid", "max_regions", "explain_regions"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise RegionSpotError(f"`{name}` must be a positive number, got {value}.")
        if sum(x is not None for x in (self.vocab, self.vocab_file, self.vocab_preset)) > 1:
            raise VocabularyError("Pass one of `vocab`, `vocab_file` or `vocab_preset`, not several.")
        if self.boxes is not None and self.boxes_json is not None:
            raise PromptError("Pass either `boxes` or `boxes_json`, not both.")
        if self.everything and (self.boxes is not None or self.boxes_json is not None or self.points is not None):
            raise PromptError("`everything` labels the regions the segmenter proposes; drop `boxes`/`points` "
                              "(or `everything`).")
        if self.model is not None and self.head is not None:
            raise RegionSpotError("Pass `model` NAME (registered weights) or `head` PATH (your own head), not both.")
        if self.max_megapixels is not None and not self.max_megapixels > 0:
            raise ImageError(f"`max_megapixels` must be a positive number, got {self.max_megapixels}.")
        if self.output_format not in OUTPUT_FORMATS:
            raise RegionSpotError(f"`output_format` must be json or coco, got {self.output_format!r}.")
        self.validate_backend()

    def validate_backend(self) -> None:
        """The backend's own refusals: an unknown name, and what the ONNX backends do not do."""
        from regionspot.inference.backend_choice import AUTO
        from regionspot.inference.backends import backend_spec

        if self.backend == AUTO:
            return
        if backend_spec(self.backend).engine is None:
            if self.onnx is not None:
                raise RegionSpotError("`onnx` names exported graphs for an ONNX backend: add `backend` onnxruntime "
                                      "(or openvino), or drop `onnx`.")
            return
        refused = [("fast", self.fast, "picks torch numerics"), ("everything", self.everything, "needs the segmenter's "
                   "proposals"), ("explain", self.explain is not None, "draws torch attention maps"),
                   ("device", self.device not in (None, "cpu"), "runs on a GPU")]
        for name, given, why in refused:
            if given:
                raise RegionSpotError(f"`{name}` {why}, which only `backend` torch does; drop `{name}` or use "
                                      f"`backend` torch.")
        if self.onnx is not None and (self.weights is not None or self.segmenter or self.vision_language):
            raise RegionSpotError("Pass `onnx` DIR (exported graphs) or the weights (`model`, `head`, `segmenter`, "
                                  "`vision_language`), not both.")

    def resolve_backend(self, has_prompts: bool) -> tuple[str, str | None]:
        """The backend "auto" stands for (any other name as given), and a line saying why when the guard's verdicts
        chose: with ``onnx`` DIR, onnxruntime; torch where the request needs it (no prompts: everything mode;
        attention maps; a GPU). ``fast`` does not stop a guarded backend: it is the faster choice there."""
        from regionspot.inference.backend_choice import AUTO, choose_backend, model_key

        if self.backend != AUTO:
            return self.backend, None
        if self.onnx is not None:
            return "onnxruntime", None
        needs = [why for why, given in (("everything mode", self.everything or not has_prompts),
                                        ("`explain`", self.explain is not None),
                                        ("a GPU `device`", self.device not in (None, "cpu"))) if given]
        return choose_backend(model_key(self.weights, self.segmenter, self.vision_language),
                              needs_torch=needs[0] if needs else None)

    @property
    def weights(self) -> str | None:
        """The weights to load: ``model`` or ``head`` (None: the embedded model)."""
        return self.model if self.model is not None else self.head

    @property
    def embedded(self) -> bool:
        """Whether the embedded ShapesWorld model answers (no other weights or backbones named)."""
        return (self.weights in (None, "shapesworld") and self.segmenter is None and self.vision_language is None
                and self.onnx is None)

    @property
    def decode_limit(self) -> int | None:
        """The most pixels an image file may have (None: PIL's decompression-bomb limit)."""
        return None if self.max_megapixels is None else int(self.max_megapixels * 1e6)

    def proposals(self) -> ProposalOptions:
        """How everything mode proposes regions."""
        return ProposalOptions(points_per_side=self.grid, max_regions=self.max_regions)

    def region_filter(self) -> RegionFilter:
        """Which proposed regions everything mode shows."""
        return RegionFilter(min_confidence=self.min_confidence, nms_iou=self.nms_iou, per_class=self.nms_per_class)
