"""Template sets, class-name cleaning and vocabulary validation."""

from __future__ import annotations

import pytest

from regionspot.errors import VocabularyError
from regionspot.text.prompts import (
    CLIP_IMAGENET_TEMPLATES,
    DEFAULT_TEMPLATES,
    clean_class_name,
    get_templates,
    validate_vocabulary,
)


def test_template_sets_have_documented_counts():
    assert DEFAULT_TEMPLATES == "imagenet"
    imagenet = get_templates("imagenet")
    assert len(imagenet) == 81 and len(set(imagenet)) == 81
    assert imagenet[0] == "{}." and set(imagenet[1:]) == set(CLIP_IMAGENET_TEMPLATES)
    assert len(get_templates("clip80")) == 80 == len(set(CLIP_IMAGENET_TEMPLATES))
    assert get_templates("single") == ["a photo of a {}."]
    assert get_templates("scene") == ["a photo of a {} in the scene."]
    assert "a bad photo of a {}." in imagenet and "itap of my {}." in imagenet
    for name in ("imagenet", "clip80", "single", "scene"):
        assert all(t.count("{}") == 1 for t in get_templates(name))


def test_get_templates_validates_lists():
    assert get_templates(["a {} here.", "{}"]) == ["a {} here.", "{}"]
    returned = get_templates("single")
    returned.append("mutated {}")
    assert get_templates("single") == ["a photo of a {}."]  # a copy, not the module's list
    with pytest.raises(VocabularyError, match="Unknown template set"):
        get_templates("nope")
    with pytest.raises(VocabularyError, match="exactly one"):
        get_templates(["no placeholder"])
    with pytest.raises(VocabularyError, match="exactly one"):
        get_templates(["{} and {}"])
    with pytest.raises(VocabularyError, match="exactly one"):
        get_templates(["a {name}"])
    with pytest.raises(VocabularyError, match="empty"):
        get_templates([])


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("wall-other-merged", "wall"),
        ("grass-merged", "grass"),
        ("sky-other", "sky"),
        ("road-stuff", "road"),
        ("traffic_light", "traffic light"),
        ("squid_(food)", "squid food"),
        ("  bow_(weapon) ", "bow weapon"),
        ("person", "person"),
    ],
)
def test_clean_class_name(raw, clean):
    assert clean_class_name(raw) == clean


def test_validate_vocabulary():
    assert validate_vocabulary(["red_square", "blue circle"]) == ["red square", "blue circle"]
    with pytest.raises(VocabularyError, match="empty"):
        validate_vocabulary([])
    with pytest.raises(VocabularyError, match="#1"):
        validate_vocabulary(["cat", "  "])
    with pytest.raises(VocabularyError, match="#0"):
        validate_vocabulary(["-other"])
    with pytest.raises(VocabularyError, match=r"\['traffic light'\]"):
        validate_vocabulary(["traffic_light", "cat", "traffic light"])
    with pytest.raises(VocabularyError, match="not one string"):
        validate_vocabulary("cat")
    with pytest.raises(VocabularyError, match="not a string"):
        validate_vocabulary(["cat", 3])
