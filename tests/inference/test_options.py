"""PredictOptions: its checks name fields, and what it derives (weights, decode limit, proposals, filter)."""

import pytest

from regionspot.errors import ImageError, PromptError, RegionSpotError, VocabularyError
from regionspot.inference.options import PredictOptions
from regionspot.inference.region_filter import RegionFilter


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"top_k": 0}, RegionSpotError, "`top_k` must be a positive number, got 0."),
    ({"vocab": "a", "vocab_preset": "coco"}, VocabularyError, "`vocab`, `vocab_file` or `vocab_preset`"),
    ({"boxes": "1,1,5,5", "boxes_json": "b.json"}, PromptError, "`boxes` or `boxes_json`"),
    ({"everything": True, "points": "1,1"}, PromptError, "`everything` labels"),
    ({"model": "BB", "head": "h.safetensors"}, RegionSpotError, "`model` NAME"),
    ({"max_megapixels": 0}, ImageError, "`max_megapixels` must be a positive number"),
    ({"output_format": "xml"}, RegionSpotError, "`output_format` must be json or coco"),
])
def test_bad_options_raise_one_error_naming_the_field(kwargs, error, message):
    with pytest.raises(error) as raised:
        PredictOptions(**kwargs).validate()
    assert message in str(raised.value)


def test_defaults_are_valid_and_derive_the_library_settings():
    options = PredictOptions()
    options.validate()
    assert options.embedded and options.weights is None and options.decode_limit is None
    assert options.region_filter() == RegionFilter()
    assert options.proposals().points_per_side == 16 and options.proposals().max_regions == 100
    named = PredictOptions(head="h.safetensors", max_megapixels=2.5, grid=8, nms_per_class=True)
    assert named.weights == "h.safetensors" and not named.embedded and named.decode_limit == 2_500_000
    assert named.proposals().points_per_side == 8 and named.region_filter().per_class
