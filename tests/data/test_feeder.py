"""The image feeder: the same batches, in order, from threads and from worker processes; exceptions of
``prepare`` reach the consumer as themselves; pinned batches; bad arguments refused."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.data.feeder import InputBatch, default_workers, feed, pin_batch, stack_inputs
from regionspot.data.images import load_image
from regionspot.errors import ImageError


@dataclass
class Pixels:
    """A batch: (B, 3, 8, 8) float pixels and the items' sizes."""

    pixels: torch.Tensor
    sizes: list[tuple[int, int]]

    def pin_memory(self) -> Pixels:
        return replace(self, pixels=self.pixels.pin_memory())


def decode_and_resize(path, side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A picklable ``prepare``: decode, resize to side², (1, 3, side, side) float pixels, original size."""
    image = load_image(path)
    array = np.asarray(image.resize((side, side)), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1)[None] / 255.0, (image.height, image.width)


def stack(prepared: list) -> Pixels:
    return Pixels(torch.cat([p for p, _ in prepared]), [s for _, s in prepared])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("feeder")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (10 + i, 12 + 2 * i, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def reference(paths, side=8) -> list[torch.Tensor]:
    return [decode_and_resize(p, side)[0][0] for p in paths]


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_the_items_prepared_in_order(images, workers):
    prepare = functools.partial(decode_and_resize, side=8)
    batches = list(feed(images, prepare, 3, collate=stack, workers=workers))
    assert [len(b.sizes) for b in batches] == [3, 3, 1]  # the last batch is partial
    pixels = torch.cat([b.pixels for b in batches])
    assert torch.equal(pixels, torch.stack(reference(images)))
    assert [s for b in batches for s in b.sizes] == [(10 + i, 12 + 2 * i) for i in range(7)]


def test_the_default_collate_is_a_list_and_no_items_give_no_batches(images):
    prepare = functools.partial(decode_and_resize, side=4)
    batches = list(feed(images[:3], prepare, 2))
    assert [len(b) for b in batches] == [2, 1] and isinstance(batches[0], list)
    assert list(feed([], prepare, 2)) == []


@pytest.mark.parametrize("workers", [0, 1])
def test_an_exception_of_prepare_reaches_the_consumer_as_itself(images, tmp_path, workers):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    prepare = functools.partial(decode_and_resize, side=8)
    got = []
    with pytest.raises(ImageError) as caught:  # not the data loader's wrapped copy
        for batch in feed([*images[:2], bad, images[3]], prepare, 2, collate=stack, workers=workers):
            got.append(batch)
    assert len(got) == 1  # the batch before the bad image arrived first
    assert "bad.png" in str(caught.value) and "Traceback" not in str(caught.value)


def test_pin_batch_pins_tensors_and_batches_with_pin_memory(monkeypatch):
    pinned = []

    def fake_pin(self):
        pinned.append(self.shape)
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)  # page-locking needs an accelerator
    batch = Pixels(torch.zeros(2, 3, 4, 4), [(4, 4), (4, 4)])
    assert pin_batch(batch) is not batch and pinned == [(2, 3, 4, 4)]
    assert pin_batch([torch.zeros(1), "text"])[1] == "text" and pinned[-1] == (1,)
    assert pin_batch("text") == "text"


def test_threads_pin_when_asked(images, monkeypatch):
    calls = []
    monkeypatch.setattr(Pixels, "pin_memory", lambda self: calls.append(len(self.sizes)) or self)
    list(feed(images, functools.partial(decode_and_resize, side=4), 4, collate=stack, pin=True))
    assert calls == [4, 3]


def test_bad_arguments_and_default_workers(images):
    with pytest.raises(ValueError, match="batch_size"):
        list(feed(images, str, 0))
    with pytest.raises(ValueError, match="workers"):
        list(feed(images, str, 1, workers=-1))
    assert default_workers("cpu") == 0
    assert 0 <= default_workers("cuda") <= 4  # decided without touching CUDA


@dataclass
class Part:
    """A stand-in segmenter input with the ``cat`` of ``SegmenterBatch``."""

    rows: list[int]

    @classmethod
    def cat(cls, parts):
        return cls([r for p in parts for r in p.rows])

    def pin_memory(self):
        return self


@dataclass
class Prepared:
    name: str
    error: str | None = None
    sam: Part | None = None
    clip: torch.Tensor | None = None


def test_stack_inputs_stacks_the_prepared_items_and_keeps_the_failed_ones_in_place():
    items = [Prepared("a", sam=Part([0]), clip=torch.zeros(1, 3, 2, 2)), Prepared("b", error="ImageError: bad"),
             Prepared("c", sam=Part([1, 2]), clip=torch.ones(2, 3, 2, 2))]
    batch = stack_inputs(items)
    assert isinstance(batch, InputBatch) and batch.good == [0, 2]
    assert batch.sam.rows == [0, 1, 2] and batch.clip.shape == (3, 3, 2, 2) and batch.clip[1:].eq(1).all()
    assert [i.name for i in batch.items] == ["a", "b", "c"] and batch.items[1].error == "ImageError: bad"
    assert all(i.sam is None and i.clip is None for i in batch.items)  # each input travels once, stacked
    empty = stack_inputs([Prepared("x", error="e")])
    assert empty.good == [] and empty.sam is None and empty.clip is None
    no_clip = stack_inputs([Prepared("a", sam=Part([0]))])
    assert no_clip.clip is None and no_clip.sam.rows == [0]
