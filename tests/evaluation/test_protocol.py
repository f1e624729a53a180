"""resolve_protocol's precedence (explicit option, then the head's record, then the original image) and
the model input it produces."""

from types import SimpleNamespace

from PIL import Image

from regionspot.config import RegionSpotConfig, preprocess_preset
from regionspot.evaluation.protocol import resolve_protocol

SEGMENTER = SimpleNamespace(decoder_layer_norm_eps=1e-5)
CLIP = SimpleNamespace(resize="torch-bilinear", antialias=False)


def _head(preset: str) -> SimpleNamespace:
    return SimpleNamespace(config=RegionSpotConfig(preprocess=preprocess_preset(preset)))


def test_head_record_then_option_then_default():
    released = resolve_protocol(SEGMENTER, CLIP, _head("released"))
    assert (released.input_resize, released.min_size, released.max_size, released.class_names) == (
        "shortest-edge", 800, 1333, "raw")
    assert resolve_protocol(SEGMENTER, CLIP, _head("released"), input_resize="none").input_resize == "none"
    plain = resolve_protocol(SimpleNamespace(decoder_layer_norm_eps=None), SimpleNamespace(resize="pil", antialias=False))
    assert (plain.input_resize, plain.class_names, plain.clip_resize, plain.sam_decoder_eps) == ("none", "clean", "pil", None)
    assert plain.report_lines()["sam_decoder_eps"] == "segmenter default"


def test_model_input_is_the_released_resize_or_the_image_itself():
    image = Image.new("RGB", (640, 480), (10, 20, 30))
    released = resolve_protocol(SEGMENTER, CLIP, _head("released"), mask_return="nearest")
    assert released.model_input(image).size == (1067, 800)
    assert resolve_protocol(SEGMENTER, CLIP, None).model_input(image) is image
    lines = released.report_lines()
    assert lines["input_resize"].startswith("shortest edge 800") and "released" in lines["mask_return"]
    assert (lines["clip_resize"], lines["class_names"], lines["sam_decoder_eps"]) == ("torch-bilinear", "raw", "1e-05")
