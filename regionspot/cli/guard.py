"""``regionspot guard``: check the fast paths' accuracy and speed against fp32 on this machine and record the verdicts
`--fast` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly
from regionspot.cli.options import flag_messages
from regionspot.evaluation.guard_options import GuardOptions


@app.command("guard")
@friendly
@flag_messages
def guard(
    data: Annotated[Path | None, typer.Option(help="A labelled COCO file to guard on (default: the ShapesWorld CI "
                                                   "subset, regenerated, with the embedded model).")] = GuardOptions.data,
    images: Annotated[Path | None, typer.Option(help="The folder of --data's images.")] = GuardOptions.images,
    model: Annotated[str | None, typer.Option(help="The model for --data: a registered name or head "
                                                   "(default: the embedded one).")] = GuardOptions.model,
    num_images: Annotated[int, typer.Option(help="Guard on the set's first N labelled images.")] = GuardOptions.num_images,
    paths: Annotated[list[str] | None, typer.Option("--path", help="A fast path to check (repeat; default: this "
                                                                   "machine's candidates).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = GuardOptions.device,
    backends: Annotated[list[str] | None, typer.Option("--backend", help="Guard an ONNX backend against torch "
                                                       "instead (repeat: onnxruntime, onnxruntime-int8, openvino, "
                                                       "openvino-bf16); `--backend auto` then uses the fastest "
                                                       "that passed.")] = None,
) -> None:
    """Compare each fast path's logits with fp32's on every ground-truth box, time it against fp32 on the same
    images, print the table and record this machine's verdicts: `regionspot predict --fast` and `eval --fast-path
    auto` then use a path only when it is accurate and faster."""
    options = GuardOptions(**{**locals(), "paths": tuple(paths or ()), "backends": tuple(backends or ())})
    options.validate()
    if options.backends:
        guard_backends(options)
        return
    from regionspot.inference.fast import verdicts_path

    if options.data is None:
        from regionspot.shapesworld.guard import run_ci_subset_guard

        rows = run_ci_subset_guard(options.chosen_paths(), options.num_images, device=options.device)
        title = f"ShapesWorld CI subset, first {options.num_images} images, embedded model; reference: fp32."
    else:
        from regionspot.evaluation.guard import run_guard

        rows = run_guard(options.chosen_paths(), options.data, options.images, options.num_images,
                         weights=options.model, device=options.device)
        title = f"{options.data.name}, first {options.num_images} labelled images, {options.model or 'embedded model'}; reference: fp32."
    from regionspot.evaluation.guard import guard_table

    typer.echo("\n".join([title, "", *guard_table(rows, options.device), "", f"verdicts recorded in {verdicts_path()}"]))


def guard_backends(options: GuardOptions) -> None:
    """The backends' guard against the torch backend (accuracy and speed), printed and recorded."""
    from regionspot.evaluation.guard import guard_table
    from regionspot.inference.backend_choice import backend_verdicts_path

    if options.data is None:
        from regionspot.shapesworld.guard import run_ci_subset_backend_guard

        rows = run_ci_subset_backend_guard(list(options.backends), options.num_images, record=True)
        title = f"ShapesWorld CI subset, first {options.num_images} images, embedded model; reference: torch fp32."
    else:
        from regionspot.evaluation.backend_guard import run_backend_guard

        rows = run_backend_guard(list(options.backends), options.data, options.images, options.num_images,
                                 weights=options.model, record=True)
        title = (f"{options.data.name}, first {options.num_images} labelled images, {options.model or 'embedded model'}; "
                 "reference: torch fp32.")
    typer.echo("\n".join([title, "", *guard_table(rows, backends=True), "",
                          f"verdicts recorded in {backend_verdicts_path()}"]))
