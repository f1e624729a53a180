"""``regionspot data``: public dataset files -> what the reader takes (``convert``), and ``check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly

data_app = typer.Typer(no_args_is_help=True, help="Public datasets: convert them to COCO JSON, check them.")
convert_data_app = typer.Typer(no_args_is_help=True, help="Convert a public dataset's files to COCO-format JSON.")
data_app.add_typer(convert_data_app, name="convert")
app.add_typer(data_app, name="data")


def echo_problems(counts: dict[str, int], examples: dict[str, list[str]], title: str) -> None:
    """A Markdown table: one row per problem kind, its count and first examples."""
    if not counts:
        typer.echo(f"{title}: none")
        return
    typer.echo(f"{title}:\n\n| problem | count | first examples |\n|---|---:|---|")
    for kind, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        shown = "; ".join(e.replace("|", "\\|") for e in examples.get(kind, []))
        typer.echo(f"| {kind} | {count:,} | {shown} |")


@convert_data_app.command("openimages")
@friendly
def convert_openimages_command(
    boxes: Annotated[Path, typer.Option(help="Box CSV, e.g. oidv6-train-annotations-bbox.csv.")],
    classes: Annotated[Path, typer.Option(help="Class descriptions CSV, e.g. oidv7-class-descriptions-boxable.csv.")],
    images: Annotated[Path, typer.Option(help="Folder of <ImageID>.jpg files (the JSON's file names are relative to it).",
                                         file_okay=False)],
    out: Annotated[Path, typer.Option(help="COCO-format JSON to write.")],
    image_list: Annotated[Path | None, typer.Option(help="Only these images: a CSV with an ImageID column, e.g. "
                                                         "train-images-boxable-with-rotation.csv.")] = None,
    group_of: Annotated[str, typer.Option(help="IsGroupOf boxes: crowd (iscrowd=1, skipped by training), drop, or keep.")] = "crowd",
    all_classes: Annotated[bool, typer.Option(help="Keep every class of the descriptions file, not only those with boxes.")] = False,
    workers: Annotated[int | None, typer.Option(help="Processes reading image headers (default: up to 8).")] = None,
    examples: Annotated[int, typer.Option(help="Examples shown per kind of skipped row.")] = 5,
) -> None:
    """OpenImages v6/v7 box CSVs -> COCO-format JSON (pixel boxes from the images' header sizes; streaming)."""
    from regionspot.data.openimages import convert_openimages

    report = convert_openimages(boxes, classes, images, out, image_list=image_list, group_of=group_of,
                                all_classes=all_classes, workers=workers, max_examples=examples)
    typer.echo(
        f"wrote {out}: {report.images:,} images, {report.boxes:,} boxes, {report.categories} categories "
        f"({report.group_of:,} group-of boxes: {group_of}); {report.rows:,} rows in {report.seconds:.1f} s "
        f"({report.boxes_per_second:,.0f} rows/s)"
    )
    echo_problems(report.problems.counts, report.problems.examples, "skipped or clipped")


@data_app.command("check")
@friendly
def check_command(
    annotations: Annotated[Path, typer.Argument(help="COCO-format annotation JSON (COCO, LVIS, Objects365, V3Det, converted OpenImages).")],
    images: Annotated[Path, typer.Option(help="Image root the JSON's file names are relative to.")],
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when any problem is found.")] = False,
    decode: Annotated[bool, typer.Option(help="Decode every image fully (finds truncated files; slow).")] = False,
    tolerance: Annotated[float, typer.Option(help="Pixels a box may reach past the image before it counts as outside.")] = 1.0,
    examples: Annotated[int, typer.Option(help="Examples shown per kind of problem.")] = 5,
    workers: Annotated[int | None, typer.Option(help="Processes reading image files (default: up to 8).")] = None,
    report_json: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Every missing/unreadable image, malformed or out-of-bounds box, unknown category and duplicate id, counted."""
    from regionspot.data.check import check_dataset

    report = check_dataset(annotations, images, decode=decode, tolerance=tolerance, max_examples=examples,
                           workers=workers)
    typer.echo(
        f"{annotations}: {report.images:,} images ({report.images_without_boxes:,} without boxes), "
        f"{report.annotations:,} annotations, {report.categories:,} categories; image paths: {report.path_rule}"
    )
    echo_problems(report.problems.counts, report.problems.examples, "problems")
    if report_json is not None:
        report_json.write_text(json.dumps({
            "annotations": str(annotations), "images": str(images), "path_rule": report.path_rule,
            "totals": {"images": report.images, "annotations": report.annotations, "categories": report.categories,
                       "images_without_boxes": report.images_without_boxes},
            "problems": report.problems.counts, "examples": report.problems.examples}, indent=1))
    if strict and not report.ok:
        typer.secho(f"error: {report.problems.total:,} problems found (--strict)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
