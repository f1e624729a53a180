"""Two CPU processes (gloo, via accelerate) with half the batch each make the same update as one process
with the whole batch: the loss is averaged per region over the global batch, not per process."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from regionspot.config import HeadConfig
from regionspot.engine.config import TrainConfig
from regionspot.engine.train import Batch, train_step
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss

HEAD = HeadConfig(token_dim=16, feature_dim=32, embed_dim=24, depth=1, num_heads=2, ffn_dim=64, dropout=0.0)
V = 5


def global_batch() -> tuple[Batch, torch.Tensor]:
    """4 images; the two halves have different numbers of valid regions (3+1 vs 6+6)."""
    g = torch.Generator().manual_seed(123)
    counts = [3, 1, 6, 6]
    tokens = torch.randn(4, 6, HEAD.token_dim, generator=g)
    labels = torch.randint(0, V, (4, 6), generator=g)
    valid = torch.arange(6)[None, :] < torch.tensor(counts)[:, None]
    labels[~valid] = 0
    fmap = torch.randn(4, 9, HEAD.feature_dim, generator=g)
    text = torch.nn.functional.normalize(torch.randn(V, HEAD.embed_dim, generator=g), dim=-1)
    return Batch(0, tokens, labels, valid, fmap), text


def part(batch: Batch, rows: slice) -> Batch:
    valid = batch.valid[rows]
    n = int(valid.sum(1).max())  # each process pads only to its own longest image
    return Batch(0, batch.tokens[rows, :n], batch.labels[rows, :n], valid[:, :n], batch.feature_map[rows])


def one_step(accelerator, batch: Batch, text: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    head = RegionSpotHead(HEAD)
    # SGD: the update is proportional to the gradient (Adam's first step would hide a scale error).
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5)
    head, optimizer = accelerator.prepare(head, optimizer)
    config = TrainConfig(clip_grad_norm=None)
    train_step(head, SigmoidFocalLoss(config.focal_alpha, config.focal_gamma), optimizer, accelerator, batch, text, 10.0,
               config.clip_grad_norm)
    return {k: v.detach().clone() for k, v in accelerator.unwrap_model(head).state_dict().items()}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == world and accelerator.process_index == rank
    batch, text = global_batch()
    params = one_step(accelerator, part(batch, slice(2 * rank, 2 * rank + 2)), text)
    if rank == 0:
        save_file(params, out)
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_one_process_with_summed_batch(tmp_path):
    out = tmp_path / "ddp.safetensors"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    ddp = load_file(str(out))

    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 1
    batch, text = global_batch()
    single = one_step(accelerator, batch, text)
    torch.manual_seed(0)
    initial = RegionSpotHead(HEAD).state_dict()
    assert ddp.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], atol=1e-6, rtol=1e-5)
    # The check can fail: averaging each half's own per-region mean (the naive DDP loss) moves differently.
    halves = [one_step(accelerator, part(batch, slice(r, r + 2)), text) for r in (0, 2)]
    naive = {k: (halves[0][k] + halves[1][k]) / 2 for k in single}
    moved = single["projector.weight"] - initial["projector.weight"]
    assert moved.abs().max() > 1e-4
    assert not torch.allclose(naive["projector.weight"], single["projector.weight"], atol=1e-5)
