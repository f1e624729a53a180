import pytest

from regionspot.backbones.typed_prompts import (
    boxes_to_xyxy,
    inverted_boxes,
    parse_numbers,
    split_prompt_items,
    xywh_suspected,
)
from regionspot.errors import PromptError


def test_numbers_separated_by_commas_or_spaces():
    assert parse_numbers("10 20 30 40", 4, "box") == [[10, 20, 30, 40]]
    assert parse_numbers("10 20 30 40; 5,6, 7 ,8\n1\t2 3 4", 4, "box") == [[10, 20, 30, 40], [5, 6, 7, 8], [1, 2, 3, 4]]
    assert parse_numbers("3 4; 5,6", 2, "point") == [[3, 4], [5, 6]]
    assert split_prompt_items(" 1 2 3 4 ;; \n") == ["1 2 3 4"]


@pytest.mark.parametrize("text,message", [
    ("10,20,30,40 50,60,70,80", "box '10,20,30,40 50,60,70,80' has 8 numbers, 2 boxes? Separate boxes with ';': "
                                "'10,20,30,40; 50,60,70,80'"),
    ("10 20 30", "box '10 20 30' has 3 numbers; each box needs 4"),
    ("1,2,x,4", "Cannot read box '1,2,x,4': 'x' is not a number"),
    ("1,2,inf,4", "NaN or infinite"),
])
def test_errors_quote_what_was_typed(text, message):
    with pytest.raises(PromptError) as error:
        parse_numbers(text, 4, "box")
    assert message in str(error.value)


def test_box_formats_and_the_xywh_suspicion():
    assert boxes_to_xyxy([[10, 20, 30, 40]], "xywh") == [[10, 20, 40, 60]]
    assert boxes_to_xyxy([[10, 20, 30, 40]], "xyxy") == [[10, 20, 30, 40]]
    with pytest.raises(PromptError, match="Unknown box format"):
        boxes_to_xyxy([[1, 2, 3, 4]], "cxcywh")
    assert inverted_boxes([[0, 0, 5, 5], [5, 5, 5, 9], [9, 9, 1, 1]]) == [1, 2]
    assert xywh_suspected([[50, 60, 20, 30], [1, 2, 30, 40]])  # one cannot be corners, all read as x,y,w,h
    assert not xywh_suspected([[1, 2, 30, 40]])  # valid corners: no evidence
    assert not xywh_suspected([[50, 60, 20, -3]])  # not valid as x,y,w,h either
