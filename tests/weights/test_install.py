"""`download_model` end to end against a loopback server serving fabricated release files: the model is
fetched (a dropped transfer resumed), verified, converted, registered, and then loads by name offline and
predicts; a wrong checksum, a web page, a wrong file and a hub-id model each behave as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from regionspot.checkpoint import save_head_checkpoint
from regionspot.config import HeadConfig, RegionSpotConfig
from regionspot.errors import CheckpointError, DownloadError
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.modeling.head import RegionSpotHead
from regionspot.registry import list_pretrained
from regionspot.testing.release_server import LoopbackServer, make_release, release_catalog, release_server
from regionspot.testing.tiny_sam import save_tiny_sam
from regionspot.weights.home import installed_models, model_dir
from regionspot.weights.install import download_model, looks_like_hub_id

SAM_PATH = "/dl/segment_anything/sam_vit_b_01ec64.pth"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture
def served(release):
    with release_server(release) as server:
        yield server, release_catalog(server.url, release)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _predict(model: RegionSpot) -> list[str]:
    predictor = RegionSpotPredictor(model)
    predictor.set_image(Image.fromarray(np.random.RandomState(0).randint(0, 255, (60, 80, 3), dtype=np.uint8)))
    predictor.set_vocabulary(["circle", "square", "star"])
    result = predictor.predict(boxes=[[2.0, 3.0, 40.0, 30.0], [30.0, 10.0, 79.0, 59.0]])
    assert np.isfinite(result.display_scores).all()
    return list(result.labels)


def test_download_resumes_verifies_converts_and_registers(served, home):
    server, catalog = served
    server.drop_once.add(SAM_PATH)
    with pytest.raises(CheckpointError, match=r"BB is not downloaded: run `regionspot download BB`.*--from DIR"):
        RegionSpot.from_pretrained("BB")
    lines = []
    model = download_model("BB", catalog=catalog, progress=False, log=lines.append)
    assert model.folder == home / "models" / "BB" and model.complete()
    assert sorted(p.name for p in model.folder.iterdir()) == ["clip", "head.safetensors", "model.json", "sam"]
    assert [r for _, path, r in server.requests if path == SAM_PATH][1].startswith("bytes=")  # resumed, not restarted
    assert any("resuming at byte" in line for line in lines)
    manifest = json.loads((model.folder / "model.json").read_text())
    assert manifest["sources"]["sam"]["checked"] == ["md5", "sha256"] and manifest["sources"]["head"]["checked"] == []
    assert manifest["sources"]["clip"]["commit"] and "CC BY-NC" in manifest["licence"]
    assert not list((home / "downloads").rglob("*.pth"))  # raw files go once converted
    assert not list((home / "models").glob(".*"))  # no staging folder left

    weights = list_pretrained()["BB"]
    assert weights.head == str(model.head) and "downloaded" in weights.description
    assert "regionspot download BL" in list_pretrained()["BL"].description
    loaded = RegionSpot.from_pretrained("BB", device="cpu")
    assert loaded.config.image_size == 32 and loaded.config.preprocess.clip_resize == "torch-bilinear"
    assert set(_predict(loaded)) <= {"circle", "square", "star"}

    server.requests.clear()
    again = []
    assert download_model("BB", catalog=catalog, progress=False, log=again.append).folder == model.folder
    assert server.requests == [] and again == [f"BB is already downloaded in {model.folder} (--force fetches it again)"]
    download_model("BB", catalog=catalog, progress=False, force=True)
    assert any(path == SAM_PATH for _, path, _ in server.requests)


def test_a_wrong_checksum_is_refused_and_nothing_is_registered(release, home):
    with release_server(release) as server:
        catalog = release_catalog(server.url, release, sam_sha256="f" * 64)
        with pytest.raises(DownloadError, match=r"Checksum mismatch for sam_vit_b_01ec64.pth: sha256 .*deleted"):
            download_model("BB", catalog=catalog, progress=False)
    assert not model_dir("BB", home).exists() and "BB" not in installed_models()
    assert not list((home / "downloads").glob("sam_vit_b*"))
    with pytest.raises(CheckpointError, match="not downloaded"):
        RegionSpot.from_pretrained("BB")


def test_a_cloud_drive_page_is_explained_then_from_dir_finishes_the_job(served, home, release, tmp_path):
    server, catalog = served
    with pytest.raises(DownloadError) as error:
        download_model("BL", catalog=catalog, progress=False)
    message = str(error.value)
    assert "answered with a web page instead of RegionSpot-BL.pth" in message and "\n" not in message
    assert f"open {server.url}/share/RegionSpot-BL" in message and "`regionspot download BL --from DIR`" in message
    assert not model_dir("BL", home).exists()

    browser = tmp_path / "Downloads"
    browser.mkdir()
    (browser / "regionspot_bl_final.pth").write_bytes(release["head"].read_bytes())  # any name will do
    lines = []
    model = download_model("BL", from_dir=browser, catalog=catalog, progress=False, log=lines.append)
    assert model.manifest["sources"]["head"]["from"] == str(browser / "regionspot_bl_final.pth")
    assert (browser / "regionspot_bl_final.pth").exists()  # the user's file is left alone
    assert any(line.startswith("sam_vit_b_01ec64.pth: verified") for line in lines)  # BB not installed: SAM fetched
    assert set(_predict(RegionSpot.from_pretrained("BL", device="cpu"))) <= {"circle", "square", "star"}


def test_the_second_model_links_the_converted_sam_of_the_first(served, home):
    server, catalog = served
    download_model("BB", catalog=catalog, progress=False)
    lines = []
    head_dir = home.parent / "heads"
    head_dir.mkdir()
    (head_dir / "RegionSpot-BL.pth").write_bytes(release_head_bytes(server))
    download_model("BL", from_dir=head_dir, catalog=catalog, progress=False, log=lines.append)
    assert "sam: the same checkpoint is already converted for BB; linked" in lines
    assert sum(path == SAM_PATH for _, path, _ in server.requests) == 1
    bb, bl = model_dir("BB", home) / "sam" / "model.safetensors", model_dir("BL", home) / "sam" / "model.safetensors"
    assert bb.read_bytes() == bl.read_bytes()


def release_head_bytes(server: LoopbackServer) -> bytes:
    return server.files["/onedrive/RegionSpot-BB.pth"].read_bytes()


def test_a_failed_run_keeps_finished_steps_for_the_next(served, home):
    server, catalog = served
    clip = server.repos.pop("openai/clip-vit-base-patch16")  # the CLIP step fails after head and SAM are done
    with pytest.raises(DownloadError, match=r"has no model 'openai/clip-vit-base-patch16'.*HTTP 404"):
        download_model("BB", catalog=catalog, progress=False)
    assert not model_dir("BB", home).exists()
    server.repos["openai/clip-vit-base-patch16"] = clip
    server.requests.clear()
    lines = []
    download_model("BB", catalog=catalog, progress=False, log=lines.append)
    assert "head: done by an earlier run" in lines and "sam: done by an earlier run" in lines
    assert not any(path in (SAM_PATH, "/onedrive/RegionSpot-BB.pth") for _, path, _ in server.requests)


def test_the_wrong_variant_file_is_refused(served, home):
    _, catalog = served
    with pytest.raises(DownloadError, match=r"RegionSpot-BL@336.pth is a 224-pixel RegionSpot head, not RegionSpot-BL@336"):
        download_model("BL@336", catalog=catalog, progress=False)
    assert not model_dir("BL@336", home).exists()


def test_unknown_names_and_missing_from_folders_are_one_line(served, home, tmp_path):
    _, catalog = served
    with pytest.raises(DownloadError, match=r"Unknown model 'XL': choose one of BB, BL, BL@336, or a Hugging Face hub id"):
        download_model("XL", catalog=catalog)
    with pytest.raises(DownloadError, match=r"--from .*nope: no such folder"):
        download_model("BB", from_dir=tmp_path / "nope", catalog=catalog)
    assert looks_like_hub_id("org/model") and not looks_like_hub_id("./org/model") and not looks_like_hub_id("a/b/c")


def test_a_hub_id_model_downloads_with_the_backbones_its_head_names(release, home, tmp_path, monkeypatch):
    repo = tmp_path / "hub-repo"
    save_tiny_sam(repo / "sam", seed=1)
    config = RegionSpotConfig(segmenter="sam", vision_language="openai/clip-vit-base-patch16", image_size=32,
                              head=HeadConfig(token_dim=32, feature_dim=48, embed_dim=24, ffn_dim=64))
    save_head_checkpoint(repo / "head.safetensors", RegionSpotHead(config.head), config)
    (repo / "README.md").write_text("# a regionspot model\n")
    with LoopbackServer(repos={"someone/regionspot-tiny": repo, "openai/clip-vit-base-patch16": release["clip"],
                               "someone/not-regionspot": release["clip"]}) as server:
        monkeypatch.setenv("HF_ENDPOINT", f"{server.url}/hub")
        model = download_model("someone/regionspot-tiny", progress=False)
        with pytest.raises(DownloadError, match=r"someone/not-regionspot holds no head.safetensors"):
            download_model("someone/not-regionspot", progress=False)
    assert model.folder == home / "models" / "someone--regionspot-tiny" and model.complete()
    assert not (model.folder / "README.md").exists()
    assert "someone/regionspot-tiny" in list_pretrained()
    assert set(_predict(RegionSpot.from_pretrained("someone/regionspot-tiny", device="cpu"))) <= {"circle", "square", "star"}


def test_a_hub_id_that_is_not_downloaded_says_how_to_get_it(home):
    with pytest.raises(CheckpointError, match=r"^someone/thing is neither a file nor a downloaded model: run "
                                              r"`regionspot download someone/thing`"):
        RegionSpot.from_pretrained("someone/thing")
