import pytest
import torch

from regionspot.checkpoint import (
    convert_official_regionspot,
    load_head_checkpoint,
    load_head_state,
    official_regionspot_state,
    save_head_checkpoint,
)
from regionspot.config import HeadConfig, RegionSpotConfig, variant_config
from regionspot.errors import CheckpointError
from regionspot.modeling.head import RegionSpotHead
from tests.modeling.test_head import reference_head


def official_file(path, feature_dim=1024, embed_dim=768, clip_positions=257, extra=None, drop=None):
    """Write a checkpoint in the official RegionSpot layout: detectron2-style {'model': ...} with
    'model.'-prefixed head keys next to frozen SAM / CLIP weights, random values."""
    torch.manual_seed(1)
    head = RegionSpotHead(HeadConfig(feature_dim=feature_dim, embed_dim=embed_dim, ffn_dim=64))
    state = {f"model.{k}": torch.randn_like(v) for k, v in head.state_dict().items()}
    state["model.sam.image_encoder.patch_embed.proj.weight"] = torch.randn(8, 3, 16, 16)
    state["model.sam.mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    state["model.clip_model.visual.positional_embedding"] = torch.randn(clip_positions, feature_dim)
    state["model.clip_model.logit_scale"] = torch.tensor(4.6052)
    state.update(extra or {})
    for key in drop or []:
        state.pop(key)
    torch.save({"model": state, "iteration": 449999}, path)
    return {k[len("model."):]: v for k, v in state.items() if not k.startswith(("model.sam.", "model.clip_model."))}


@pytest.mark.parametrize("width,embed,positions,variant", [(1024, 768, 257, "BL"), (1024, 768, 577, "BL@336"),
                                                           (768, 512, 197, "BB")])
def test_official_checkpoint_converts_and_matches_reference(tmp_path, width, embed, positions, variant):
    src = tmp_path / "regionspot_official.pth"
    head_state = official_file(src, width, embed, positions)
    out = convert_official_regionspot(src, tmp_path / "head.safetensors")
    state, config, meta = load_head_checkpoint(out)
    expected = variant_config(variant)
    assert (config.segmenter, config.vision_language, config.image_size) == (
        expected.segmenter, expected.vision_language, expected.image_size)
    head = RegionSpotHead(config.head).eval()
    load_head_state(head, state)
    tokens, fmap = torch.randn(4, 256), torch.randn(10, width)
    with torch.no_grad():
        ours = head(tokens[None], fmap[None]).region_embeddings[0]
        ref = reference_head(head_state, tokens, fmap, config.head)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    assert meta["converted_from"] == src.name


def test_official_pth_loads_directly(tmp_path):
    src = tmp_path / "x.pth"
    official_file(src)
    state, config, _ = load_head_checkpoint(src)
    assert "to_clip.weight" in state and not any(k.startswith(("sam.", "clip_model.")) for k in state)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    src = tmp_path / "missing.pth"
    official_file(src, drop=["model.decoder.layers.1.norm2.weight"])
    with pytest.raises(CheckpointError, match=r"decoder\.layers\.1\.norm2\.weight"):
        official_regionspot_state(src)
    src2 = tmp_path / "extra.pth"
    official_file(src2, extra={"model.extra_adapter.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"extra_adapter\.weight"):
        official_regionspot_state(src2)


def test_wrong_variant_is_refused(tmp_path):
    src = tmp_path / "bb.pth"
    official_file(src, 768, 512, 197)
    with pytest.raises(CheckpointError, match="variant BL"):
        convert_official_regionspot(src, tmp_path / "o.safetensors", variant="BL")
    state, config = official_regionspot_state(src)
    big = RegionSpotHead(HeadConfig(feature_dim=1024, embed_dim=768, ffn_dim=64))
    with pytest.raises(CheckpointError, match="shape"):
        load_head_state(big, state)


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    src = tmp_path / "evil.pth"
    torch.save({"model": {"model.to_clip.weight": torch.zeros(1)}, "x": Evil()}, src)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_head_checkpoint(src)


def test_safetensors_round_trip_keeps_config(tmp_path):
    config = RegionSpotConfig(segmenter="sam-folder", vision_language="clip-folder", image_size=336,
                              head=HeadConfig(feature_dim=32, embed_dim=16, ffn_dim=64, depth=1))
    head = RegionSpotHead(config.head)
    path = save_head_checkpoint(tmp_path / "h.safetensors", head, config, {"step": 7})
    state, loaded, meta = load_head_checkpoint(path)
    assert loaded == config and meta["step"] == 7
    for k, v in head.state_dict().items():
        assert torch.equal(state[k], v)


def test_non_checkpoint_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_head_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_head_checkpoint(tmp_path / "nope.safetensors")


def test_converted_official_head_carries_the_released_preprocessing(tmp_path):
    from regionspot.config import preprocess_preset

    src = tmp_path / "RegionSpot-BL.pth"
    official_file(src)
    out = convert_official_regionspot(src, tmp_path / "head.safetensors", variant="BL")
    _, config, _ = load_head_checkpoint(out)
    assert config.preprocess == preprocess_preset("released")
    p = config.preprocess
    assert (p.clip_resize, p.clip_antialias, p.eval_resize, p.eval_min_size, p.eval_max_size, p.class_names,
            p.sam_decoder_eps) == ("torch-bilinear", False, "shortest-edge", 800, 1333, "raw", 1e-5)
    # Round trip: save what was loaded, load it again.
    again = save_head_checkpoint(tmp_path / "again.safetensors", load_head_checkpoint(out)[0], config)
    assert load_head_checkpoint(again)[1].preprocess == config.preprocess
    _, direct, _ = load_head_checkpoint(src)  # an official .pth read directly gets the same
    assert direct.preprocess == config.preprocess


def test_checkpoint_without_preprocessing_loads_with_the_old_defaults_and_says_so_once(tmp_path):
    import json
    import warnings

    from safetensors.torch import save_file

    from regionspot.config import PreprocessConfig
    from regionspot.errors import LegacyCheckpointWarning

    head = RegionSpotHead(HeadConfig(feature_dim=32, embed_dim=16, ffn_dim=8, num_heads=2, depth=1))
    old_config = RegionSpotConfig(head=head.config).to_dict()
    del old_config["preprocess"]  # as written before preprocessing was recorded
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path), metadata={
        "format": "regionspot-head", "format_version": "1", "regionspot_version": "0.1.0",
        "config": json.dumps(old_config), "meta": "{}"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, config, _ = load_head_checkpoint(path)
        load_head_checkpoint(path)
    legacy = [w for w in caught if issubclass(w.category, LegacyCheckpointWarning)]
    assert len(legacy) == 1 and "records no preprocessing" in str(legacy[0].message)
    assert config.preprocess == PreprocessConfig()
    assert (config.preprocess.clip_resize, config.preprocess.class_names) == ("pil", "clean")


def test_model_runs_the_preprocessing_its_head_records(tmp_path, tiny_model_dir):
    import shutil

    from regionspot.config import preprocess_preset
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    state, config, meta = load_head_checkpoint(folder / "head.safetensors")
    config.preprocess = preprocess_preset("released")
    save_head_checkpoint(folder / "head.safetensors", state, config, meta)
    model = RegionSpot.from_pretrained(folder)
    assert (model.vision_language.resize, model.vision_language.antialias) == ("torch-bilinear", False)
    assert model.segmenter.decoder_layer_norm_eps == 1e-5
    predictor = RegionSpotPredictor(model, text_cache_dir=str(tmp_path / "text"))
    predictor.set_vocabulary(["bat_(animal)", "Band_Aid"])
    assert predictor.vocabulary == ["bat_(animal)", "Band_Aid"]  # raw names, as the released code prompts them
    default = RegionSpot.from_pretrained(tiny_model_dir)
    assert default.vision_language.resize == "pil" and default.segmenter.decoder_layer_norm_eps == 1e-6


def test_trained_with_negatives_round_trips_and_older_heads_load_without_it(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    head = RegionSpotHead(HeadConfig(feature_dim=32, embed_dim=16, ffn_dim=8, num_heads=2, depth=1))
    config = RegionSpotConfig(head=head.config, trained_with_negatives=True)
    path = save_head_checkpoint(tmp_path / "neg.safetensors", head, config)
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["config"])["trained_with_negatives"] is True  # the name others read
    assert load_head_checkpoint(path)[1].trained_with_negatives is True
    old_config = RegionSpotConfig(head=head.config).to_dict()
    del old_config["trained_with_negatives"]  # as written before it was recorded
    old = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(old), metadata={
        "format": "regionspot-head", "format_version": "1", "regionspot_version": "0.1.0",
        "config": json.dumps(old_config), "meta": "{}"})
    state, loaded, _ = load_head_checkpoint(old)
    assert loaded.trained_with_negatives is False and state.keys() == head.state_dict().keys()


def test_the_embedded_head_loads_and_says_whether_it_was_trained_with_negatives():
    from regionspot.registry import assets_dir

    _, config, _ = load_head_checkpoint(assets_dir() / "shapesworld" / "head.safetensors")
    assert isinstance(config.trained_with_negatives, bool)
