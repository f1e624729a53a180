"""Template sets, class-name cleaning and vocabulary validation."""

from __future__ import annotations

import pytest

from regionspot.errors import VocabularyError
from regionspot.text.templates import (
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


# Raw LVIS v1 names that need care (underscores, parentheses, capitals, hyphens, a two-word entry).
TRICKY_LVIS = ["aerosol_can", "bat_(animal)", "Band_Aid", "bow-tie", "first-aid_kit",
               "monitor_(computer_equipment) computer_monitor", "pug-dog", "table-tennis_table"]


def test_raw_names_keep_the_dataset_spelling_as_the_released_code_does():
    # The released code only strips the panoptic suffixes: str.replace of "-other", "-merged", "-stuff".
    def released(name):
        return name.replace("-other", "").replace("-merged", "").replace("-stuff", "")

    for name in TRICKY_LVIS + ["wall-other-merged", "sky-other", "rug-merged", "playingfield-stuff"]:
        assert clean_class_name(name, "raw") == released(name)
    assert validate_vocabulary(TRICKY_LVIS, "raw") == TRICKY_LVIS
    assert clean_class_name("bat_(animal)") == "bat animal"  # the default rewrites it
    assert clean_class_name("Band_Aid", "clean") == "Band Aid"
    with pytest.raises(VocabularyError, match="style"):
        clean_class_name("cat", "lower")
    with pytest.raises(VocabularyError, match="empty"):
        validate_vocabulary(["-other"], "raw")
