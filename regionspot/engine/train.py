"""Training loop on HF accelerate: the same code on CPU, one GPU, several GPUs (DDP) and several machines.

Only the head is trained. Region tokens come from the token cache (no segmenter at train time); the
vision-language feature map comes from the cache or is computed online (``engine.online_maps``).

Augmentation keeps tokens and the vision-language image consistent: the cache holds tokens of the
original *and* the mirrored image (mirrored before the segmenter), and a step that picks the mirrored
variant also feeds the mirrored image (or its cached map) to the vision-language model. No crop is used:
a crop would move regions relative to the frame the tokens were computed in (the official code crops
the CLIP image while its cached tokens stay uncropped). Scale jitter is not used either: the
vision-language model sees the whole image resized to its fixed input size, so rescaling the image
first changes nothing but interpolation. Online features may add colour jitter, which moves nothing.

Randomness is derived per step from (seed, step, rank), so a resumed run draws exactly what the
uninterrupted run drew; the sampler's state is checkpointed with the weights.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from regionspot.cache.store import TokenCache
from regionspot.engine.batches import Batch, collate, drop_vocabulary, step_generator
from regionspot.engine.checkpointing import (
    clear_run,
    load_training_checkpoint,
    plan_run,
    save_training_checkpoint,
)
from regionspot.engine.collapse import CollapseMonitor
from regionspot.engine.config import TrainConfig
from regionspot.engine.online_maps import online_feature_maps
from regionspot.engine.setup import TrainingSetup, build_training, make_sampler
from regionspot.errors import CheckpointError, RegionSpotError, TrainingDivergedError
from regionspot.modeling.scoring import score_regions
from regionspot.utils.progress import progress_bar


def train_step(
    head: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Any,
    batch: Batch,
    text_embeddings: torch.Tensor,
    logit_scale: float,
    clip_grad_norm: float | None = None,
    observe: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
    logit_bias: float | None = None,
) -> dict[str, float]:
    """Forward, loss averaged per region over the *global* batch, backward, clip, optimizer step.

    criterion: ``criterion(logits (B, N, V), labels (B, N), valid (B, N))`` → the loss of this process per
    valid labelled region (the paper's: ``SigmoidFocalLoss``; a label -1 is a negative with all-zero targets).

    Averaging over the global number of valid labelled regions (all-reduced) makes N processes with B/N images
    each produce the same update as one process with B images (DDP averages gradients over processes).
    Raises TrainingDivergedError (before touching the weights) when any process sees a non-finite loss.
    observe: called with (logits, labels, valid) after the step (the collapse check's predictions).
    logit_bias: the vision-language model's bias (SigLIP's sigmoid form), None for CLIP.
    """
    device = accelerator.device
    tokens = batch.tokens.to(device)
    labels = batch.labels.to(device)
    valid = batch.valid.to(device)
    fmap = batch.feature_map.to(device) if batch.feature_map is not None else None
    known = valid & (labels >= 0)  # labelled regions; negatives (-1) have all-zero targets
    n_local = known.sum().float()
    n_global = accelerator.reduce(n_local.clone(), reduction="sum") if accelerator.num_processes > 1 else n_local
    with accelerator.autocast():
        logits = score_regions(head, tokens, fmap, text_embeddings, logit_scale, ~valid,
                               logit_bias=logit_bias).logits  # (B, N, V)
    local_mean = criterion(logits, labels, valid)
    loss = local_mean * n_local / n_global.clamp(min=1.0) * accelerator.num_processes
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if accelerator.num_processes > 1:
        finite = accelerator.reduce(finite, reduction="min")
    if finite.item() < 1:
        raise TrainingDivergedError("non-finite loss")
    accelerator.backward(loss)
    grad_norm = float("nan")
    if clip_grad_norm is not None:
        grad_norm = float(accelerator.clip_grad_norm_(head.parameters(), clip_grad_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        correct = ((logits.argmax(-1) == labels) & known).sum().float()
        if observe is not None:
            observe(logits, labels, known)
    return {
        "loss": float(local_mean.detach()),
        "accuracy": float(correct / n_local.clamp(min=1.0)),
        "grad_norm": grad_norm,
    }


def run_step(setup: TrainingSetup, head: nn.Module, optimizer: torch.optim.Optimizer, accelerator: Any,
             config: TrainConfig, dataset_index: int, indices: list[int], step: int,
             observe: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None) -> dict[str, float]:
    """One optimisation step on records ``indices`` of dataset ``dataset_index``, scored against that
    dataset's own vocabulary. Flips and dropout are drawn from (seed, step, rank), so a resumed run repeats
    them. head / optimizer: as prepared by accelerate. Returns :func:`train_step`'s metrics."""
    rank = accelerator.process_index
    gen = step_generator(config.seed, step, rank)
    cache = setup.caches[dataset_index]
    flips = (torch.rand(len(indices), generator=gen) < config.flip_prob).tolist() if cache.has_flip else []
    items = [cache.get(int(i), bool(flips[k]) if flips else False) for k, i in enumerate(indices)]
    batch = collate(items, dataset_index, config.max_regions, gen, config.negatives_per_image)
    if config.feature_source == "online":
        batch.feature_map = online_feature_maps(setup.vision_language, cache, items, config.color_jitter, gen)
    texts = setup.texts[dataset_index]
    if config.vocabulary_drop > 0:
        texts, batch.labels, observe = drop_vocabulary(texts, batch.labels, config.vocabulary_drop, gen, observe)
    torch.manual_seed(config.seed + 7919 * (step + 1) + rank)  # dropout draws of this step
    return train_step(head, setup.criterion, optimizer, accelerator, batch, texts, setup.logit_scale,
                      config.clip_grad_norm, observe, setup.logit_bias)


# --------------------------------------------------------------------------- the run


@dataclass
class TrainResult:
    """run_dir: the run folder; step: the last step; history: this call's logged steps (main process);
    final_head: the exported head (main process); resumed_from: the checkpoint this call continued from;
    finished: True when the run was already done and nothing was trained."""

    run_dir: Path
    step: int
    history: list[dict[str, float]]
    final_head: Path | None
    resumed_from: Path | None = None
    finished: bool = False


def train(config: TrainConfig, resume: bool | Path = True, accelerator: Any = None, show_progress: bool = True,
          restart: bool = False, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train a head per ``config``; returns the run folder, last step and the logged history (main process).

    resume (default True): a rerun into the same ``output_dir`` continues from its latest checkpoint, or
    returns at once (``finished=True``) when that run is done; a folder holding a run of another config
    is refused (see :func:`regionspot.engine.checkpointing.plan_run`). A path resumes from that checkpoint
    folder; False refuses a folder that holds a run. restart: delete the folder's run outputs and start
    at step 0. log: called (main process) with one line saying where the run starts.
    """
    from accelerate import Accelerator

    config.validate()
    if accelerator is None:
        accelerator = Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    if config.batch_size % world:
        raise RegionSpotError(f"batch_size {config.batch_size} is not divisible by {world} processes; change batch_size.")
    per_rank = config.batch_size // world
    run_dir = Path(config.output_dir)
    main = accelerator.is_main_process
    plan = plan_run(run_dir, config.to_dict(), config.max_iters, resume, restart)
    accelerator.wait_for_everyone()  # every process has read the folder before the main one writes to it
    say = log if (log is not None and main) else (lambda _line: None)
    if plan.finished is not None:
        say(f"{run_dir} is finished (step {plan.step} of {config.max_iters}); its head is {plan.finished} "
            "(--restart trains it again, a larger max_iters trains it on)")
        return TrainResult(run_dir, plan.step, [], plan.finished, finished=True)
    _open_run_folder(run_dir, config, plan.checkpoint, plan.step, restart, accelerator, say)

    setup = build_training(config, accelerator.device, show_progress and main)
    head, optimizer, scheduler = setup.head, setup.optimizer, setup.scheduler
    sampler = make_sampler(
        [c.num_images for c in setup.caches], [d.weight for d in config.datasets], per_rank, config.seed, rank, world
    )
    ckpt = plan.checkpoint
    start = 0 if ckpt is None else _restore(ckpt, head, optimizer, scheduler, sampler, rank, world)
    # The scheduler is stepped by hand: accelerate's prepared scheduler steps once per process.
    head, optimizer = accelerator.prepare(head, optimizer)
    head.train()

    history: list[dict[str, float]] = []
    logger = _RunLog(run_dir, start, config, say) if main else None
    bar = progress_bar(total=config.max_iters, initial=start, desc="train", disable=not (show_progress and main))
    last_good = ckpt
    batches = iter(sampler)
    t_last, step = time.perf_counter(), start
    try:
        while step < config.max_iters:
            ds_index, indices = next(batches)
            try:
                metrics = run_step(setup, head, optimizer, accelerator, config, ds_index, indices, step,
                                   logger.monitor.observe_batch if logger is not None else None)
            except TrainingDivergedError:
                raise _diverged(step + 1, last_good) from None
            scheduler.step()
            step += 1
            now = time.perf_counter()
            metrics.update(step=step, lr=scheduler.get_last_lr()[0], it_per_s=1.0 / max(now - t_last, 1e-9))
            t_last = now
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
            if logger is not None:
                history.append(metrics)
                logger.record(step, metrics)
            if step % config.checkpoint_every == 0 or step == config.max_iters:
                last_good = _save_checkpoint(run_dir, step, accelerator, head, config, optimizer, scheduler, sampler,
                                             last_good)
    finally:
        bar.close()
        if logger is not None:
            logger.close()

    final_head = None
    if main:
        final_head = export_final_head(run_dir, accelerator.unwrap_model(head), config, step, setup.fingerprints)
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, step, history, final_head, resumed_from=ckpt)


def _diverged(step: int, last_good: Path | None) -> TrainingDivergedError:
    """The error for a non-finite loss at ``step``, naming the last good checkpoint and the remedies."""
    where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
    return TrainingDivergedError(
        f"Loss became NaN/inf at step {step}; training stopped and {where}. Lower lr, raise "
        "warmup_iters, or use mixed_precision=bf16/no instead of fp16."
    )


def _open_run_folder(run_dir: Path, config: TrainConfig, checkpoint: Path | None, step: int, restart: bool,
                     accelerator: Any, say: Callable[[str], None]) -> None:
    """The main process clears the folder (``restart``), creates it and writes ``config.yaml``; every
    process then waits for it. ``say`` the step the run starts at."""
    if accelerator.is_main_process:
        if restart:
            clear_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run_dir / "config.yaml")
    accelerator.wait_for_everyone()
    if checkpoint is not None:
        say(f"resuming from step {step} of {config.max_iters} ({checkpoint})")
    else:
        say(f"{'restarting' if restart else 'starting'} at step 0 of {config.max_iters} in {run_dir}")


def _restore(checkpoint: Path, head: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, sampler: Any,
             rank: int, world: int) -> int:
    """Load a training checkpoint into the (not yet prepared) head, optimizer, scheduler and this rank's
    sampler; returns its step. Raises CheckpointError when it was written by another number of processes."""
    head_state, optim_state, state = load_training_checkpoint(checkpoint)
    head.load_state_dict(head_state, strict=True)
    optimizer.load_state_dict(optim_state["optimizer"])
    scheduler.load_state_dict(optim_state["scheduler"])
    if len(state["sampler"]) != world:
        raise CheckpointError(f"{checkpoint} was written by {len(state['sampler'])} processes; resume with as many.")
    sampler.load_state_dict(state["sampler"][rank])
    return int(state["step"])


class _RunLog:
    """The main process's record of a run: ``metrics.csv`` (appended to on resume), TensorBoard scalars and
    the collapse monitor, written every ``log_every`` steps and at the last."""

    def __init__(self, run_dir: Path, start: int, config: TrainConfig, say: Callable[[str], None]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.config = config
        self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        csv_path = run_dir / "metrics.csv"
        new = not csv_path.exists() or start == 0
        self.csv_file = open(csv_path, "w" if new else "a", newline="")
        self.writer = csv.writer(self.csv_file)
        if new:
            self.writer.writerow(["step", "loss", "accuracy", "lr", "grad_norm", "it_per_s"])
        self.monitor = CollapseMonitor(config.lr, config.batch_size, config.max_iters, log=say,
                                       flat_until=min(config.lr_steps, default=config.max_iters))

    def record(self, step: int, metrics: dict[str, float]) -> None:
        """Feed the monitor every step; check it and write the logs on logging steps."""
        config = self.config
        self.monitor.observe(metrics)
        if step % config.log_every == 0 or step == config.max_iters:
            self.monitor.check(step)
            self.writer.writerow([step, metrics["loss"], metrics["accuracy"], metrics["lr"], metrics["grad_norm"],
                                  metrics["it_per_s"]])
            self.csv_file.flush()
            for key in ("loss", "accuracy", "lr", "grad_norm"):
                if not math.isnan(metrics[key]):
                    self.tb.add_scalar(f"train/{key}", metrics[key], step)

    def close(self) -> None:
        self.tb.close()
        self.csv_file.close()


def _save_checkpoint(run_dir: Path, step: int, accelerator: Any, head: nn.Module, config: TrainConfig,
                     optimizer: torch.optim.Optimizer, scheduler: Any, sampler: Any, last_good: Path | None) -> Path | None:
    """Every process hands in its sampler state; the main process writes the checkpoint of ``step``. Returns
    the last good checkpoint (the new one on the main process, ``last_good`` on the others)."""
    from accelerate.utils import gather_object

    world = accelerator.num_processes
    states = gather_object([sampler.state_dict()]) if world > 1 else [sampler.state_dict()]
    if accelerator.is_main_process:
        last_good = save_training_checkpoint(
            run_dir, step, accelerator.unwrap_model(head), config.model, optimizer, scheduler, states,
            config.keep_checkpoints
        )
    accelerator.wait_for_everyone()
    return last_good


def export_final_head(run_dir: Path, head: nn.Module, config: TrainConfig, step: int,
                      fingerprints: dict[str, str] | None = None) -> Path:
    """``run_dir/final_head.safetensors`` via regionspot.checkpoint (head weights + config + backbones by name,
    hub id or relative folder, with their weights ``fingerprints`` when given)."""
    from regionspot.checkpoint import save_head_checkpoint

    path = run_dir / "final_head.safetensors"
    meta = {"steps": step, "datasets": [d.cache for d in config.datasets], "seed": config.seed,
            **({"backbone_fingerprints": fingerprints} if fingerprints else {})}
    save_head_checkpoint(path, head, config.model, meta=meta)
    return path


@torch.no_grad()
def cache_accuracy(
    head: nn.Module,
    cache: TokenCache,
    text_embeddings: torch.Tensor,
    logit_scale: float,
    vision_language: Any = None,
    batch_size: int = 8,
) -> float:
    """Top-1 accuracy of ``head`` over every box of the cache's unflipped images (train-set accuracy).

    Feature maps come from the cache, or from ``vision_language`` online when given.
    """
    was_training = head.training
    head.eval()
    device = next(head.parameters()).device
    correct = total = 0
    gen = torch.Generator().manual_seed(0)
    for lo in range(0, cache.num_images, batch_size):
        items = [cache.get(i, False) for i in range(lo, min(lo + batch_size, cache.num_images))]
        batch = collate(items, 0, 10**9, gen)
        fmap = batch.feature_map if vision_language is None else online_feature_maps(vision_language, cache, items, 0.0, gen)
        logits = score_regions(head, batch.tokens, fmap, text_embeddings, logit_scale, ~batch.valid.to(device)).logits
        pred = logits.argmax(-1).cpu()  # (B, N)
        correct += int(((pred == batch.labels) & batch.valid).sum())
        total += int(batch.valid.sum())
    head.train(was_training)
    return correct / max(total, 1)
