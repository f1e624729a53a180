import pytest
import torch

from regionspot.errors import RegionSpotError
from regionspot.inference import fast
from regionspot.inference.fast import (
    GUARD_MAX_ABS_LOGIT,
    GUARD_MIN_SPEEDUP,
    GuardResult,
    PathSpeed,
    candidate_paths,
    choose_fast_path,
    compare_logits,
    machine_signature,
    no_choice_reason,
    passes_guard,
    pays_off,
    read_verdicts,
    resolve_fast_path,
    write_verdicts,
)
from regionspot.model import RegionSpot


def test_compare_logits_counts_agreement_and_error():
    reference = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    same = compare_logits(reference, reference.clone(), k=2)
    assert same == GuardResult(4, 0.0, 0.0, 1.0, 1.0, 1.0) and passes_guard(same)
    flipped = reference.clone()
    flipped[0, 1] = 3.5  # region 0 changes its top-1 class
    result = compare_logits(reference, flipped, k=2)
    assert result.top1 == 0.75 and result.max_abs == pytest.approx(2.5) and not passes_guard(result)
    with pytest.raises(ValueError):
        compare_logits(reference, reference[:2])


def test_a_reordered_tie_agrees_up_to_ties_only():
    """fp32's top-2 of region 0 differ by 0.004 logits (a tie): a path that swaps them disagrees on plain top-1
    but agrees up to ties; swapping a 0.5-logit lead disagrees on both."""
    reference = torch.tensor([[2.004, 2.0, 0.0]] + [[3.0, 0.0, 0.0]] * 99)
    swapped = reference.clone()
    swapped[0, :2] = torch.tensor([2.0, 2.004])
    result = compare_logits(reference, swapped)
    assert result.top1 == pytest.approx(0.99) and result.top1_up_to_ties == 1.0
    clear = reference.clone()
    clear[0] = torch.tensor([2.5, 2.0, 0.0])
    swapped_clear = clear.clone()
    swapped_clear[0, :2] = torch.tensor([2.0, 2.5])
    swapped_clear[1, :2] = torch.tensor([0.0, 3.0])  # and a second region: 98 % < GUARD_TOP1
    result = compare_logits(clear, swapped_clear)
    assert result.top1 == result.top1_up_to_ties == pytest.approx(0.98) and not passes_guard(result)


def test_candidates_follow_the_hardware(monkeypatch):
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: True)
    assert candidate_paths("cpu") == ["bf16", "int8", "fp32"]
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    assert candidate_paths("cpu") == ["int8", "fp32"]


def _fast(speedup: float, switch: float = 0.0) -> PathSpeed:
    """A PathSpeed of ``speedup`` against 1 s of fp32 per image."""
    return PathSpeed(1.0 / speedup, 1.0, switch)


def test_pays_off_needs_the_speedup_and_a_switch_one_image_repays():
    assert pays_off(_fast(GUARD_MIN_SPEEDUP)) and pays_off(_fast(2.0, switch=0.5))
    assert not pays_off(_fast(1.05))  # accurate but within timing noise of fp32
    assert not pays_off(_fast(2.0, switch=0.6))  # one image saves 0.5 s, the switch costs more
    assert _fast(2.0).speedup == pytest.approx(2.0) and PathSpeed(0.0, 1.0).speedup == 0.0


def test_choose_takes_the_fastest_candidate_that_passed_both(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: True)
    assert choose_fast_path("cpu") is None
    with pytest.raises(RegionSpotError, match="regionspot guard"):  # names the command that makes them
        resolve_fast_path("auto", "cpu")
    good, bad = GuardResult(10, 0.1, 0.01, 1.0, 1.0), GuardResult(10, 5.0, 1.0, 0.8, 0.9)
    write_verdicts({"bf16": bad, "int8": good}, "cpu", speeds={"bf16": _fast(3.0), "int8": _fast(1.5)})
    assert choose_fast_path("cpu") == "int8" and resolve_fast_path("auto", "cpu") == "int8"
    write_verdicts({"bf16": good, "int8": good}, "cpu", speeds={"bf16": _fast(1.3), "int8": _fast(1.8)})
    assert choose_fast_path("cpu") == "int8"  # the faster of the two, not the first candidate
    write_verdicts({"bf16": bad, "int8": bad}, "cpu", speeds={"bf16": _fast(3.0), "int8": _fast(3.0)})
    assert choose_fast_path("cpu") == "fp32"
    entry = read_verdicts()[machine_signature("cpu")]["int8"]
    assert entry["passed"] is False and entry["pays_off"] is True and entry["speed"]["speedup"] == pytest.approx(3.0)
    assert resolve_fast_path("bf16") == "bf16"


def test_an_accurate_path_that_is_not_faster_is_never_picked(tmp_path, monkeypatch):
    """int8 on an AVX2-only CPU: passes the accuracy guard, runs no faster than fp32 (43.5 vs 42.2 s)."""
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    good = GuardResult(56, 0.24, 0.01, 0.96, 0.99, 1.0)
    write_verdicts({"int8": good}, "cpu", speeds={"int8": PathSpeed(43.5, 42.2, 1.0)})
    assert passes_guard(good) and choose_fast_path("cpu") == "fp32"
    write_verdicts({"int8": good, "compile": good}, "cpu",
                   speeds={"int8": PathSpeed(43.5, 42.2, 1.0), "compile": _fast(5.0)})
    assert choose_fast_path("cpu") == "fp32"  # compile is never a --fast candidate, however fast it timed


def test_verdicts_without_speed_are_not_measured(tmp_path, monkeypatch):
    """A verdict file from before the guard timed the paths: nothing is picked, and the reason says re-run."""
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    write_verdicts({"int8": GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu")
    assert "speed" not in read_verdicts()[machine_signature("cpu")]["int8"]
    assert choose_fast_path("cpu") is None
    assert "re-run `regionspot guard`" in no_choice_reason("cpu") and "\n" not in no_choice_reason("cpu")
    with pytest.raises(RegionSpotError, match="no speed measured"):
        resolve_fast_path("auto", "cpu")
    assert "makes them" in no_choice_reason("cpu", verdicts={})


def _logits(model, image, boxes, names):
    from regionspot.inference.predictor import RegionSpotPredictor

    predictor = RegionSpotPredictor(model, text_cache_dir=None)
    predictor.set_image(image)
    predictor.set_vocabulary(names)
    result = predictor.predict(boxes=boxes, return_masks=False)
    return torch.from_numpy(result.probs)


@pytest.fixture(scope="module")
def example():
    import json

    from regionspot.registry import assets_dir

    folder = assets_dir() / "shapesworld"
    spec = json.loads((folder / "example.json").read_text())
    return folder / spec["image"], spec["boxes"], spec["vocabulary"]


def test_default_path_is_unchanged(example, tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    image, boxes, names = example
    default = RegionSpot.from_pretrained()
    explicit = RegionSpot.from_pretrained(fast_path="fp32")
    assert default.fast_path == "fp32"
    assert default.segmenter.model.config._attn_implementation == "sdpa"
    assert "forward" not in default.segmenter.model.vision_encoder.__dict__
    assert torch.equal(_logits(default, image, boxes, names), _logits(explicit, image, boxes, names))


@pytest.mark.parametrize("path", ["eager", "bf16", "int8", "compile"])
def test_fast_paths_keep_the_example_top1(example, path, tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    image, boxes, names = example
    reference = _logits(RegionSpot.from_pretrained(), image, boxes, names)
    model = RegionSpot.from_pretrained(fast_path=path)
    probs = _logits(model, image, boxes, names)
    assert model.fast_path == path
    # Logit error (log-probability change less its per-region mean, i.e. the softmax's free shift) within
    # the guard's bound, and the same top-1 wherever fp32's top-1 leads by more than twice that error: a
    # lossy path may swap a near tie (two classes of one shape can lead each other by a few hundredths in log-probability).
    delta = probs.log() - reference.log()
    error = (delta - delta.mean(-1, keepdim=True)).abs().max()
    assert error <= GUARD_MAX_ABS_LOGIT
    top2 = reference.log().topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * error
    assert clear.any()
    assert torch.equal(probs.argmax(-1)[clear], reference.argmax(-1)[clear])
    if path in ("bf16", "int8"):
        assert model.vision_language.weights_fingerprint.endswith(f"+{path}")  # own text-cache entries
    if path == "compile":  # fp32 maths, fused by inductor: float error only, and the text tower is untouched
        assert error < 1e-3 and "+" not in model.vision_language.weights_fingerprint


def test_unknown_and_auto_paths_are_programmer_errors():
    model = RegionSpot.from_pretrained()
    with pytest.raises(ValueError, match="Unknown numerics"):
        model.set_numerics("fp8")
    with pytest.raises(ValueError, match="resolve_fast_path"):
        RegionSpot.from_pretrained(fast_path="auto")
    assert model.fast_path == "fp32"


def test_model_set_numerics_switches_both_backbones(tiny_model_dir):
    model = RegionSpot.from_pretrained(tiny_model_dir)
    prints = [model.segmenter.weights_fingerprint, model.vision_language.weights_fingerprint]
    assert model.set_numerics("bf16") == "+bf16" and model.fast_path == "bf16"
    assert [model.segmenter.weights_fingerprint, model.vision_language.weights_fingerprint] == [p + "+bf16" for p in prints]
    assert "forward" in model.segmenter.model.vision_encoder.__dict__
    assert "forward" in model.vision_language.model.vision_model.__dict__
    assert model.set_numerics("fp32") == "" and model.vision_language.weights_fingerprint == prints[1]
