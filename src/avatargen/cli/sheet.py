"""`avatargen sheet DIR -o sheet.jpg`: a batch's results as one labelled contact sheet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from avatargen.cli.options import Json


def sheet(
    folder: Annotated[
        str, typer.Argument(metavar="DIR", help="Folder of images, e.g. a batch's output folder.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The sheet: .jpg, .png or .webp (default: sheet.jpg in the current folder).",
        ),
    ] = "sheet.jpg",
    columns: Annotated[int, typer.Option("--columns", "-c", help="Thumbnails per row.")] = 10,
    thumb: Annotated[int, typer.Option("--thumb", help="Thumbnail size in pixels (longest side).")] = 256,
    per_page: Annotated[
        int, typer.Option("--per-page", help="Images per sheet; more give FILE-1, FILE-2, ...")
    ] = 200,
    json_: Json = False,
) -> None:
    """Lay out a folder of results in a labelled grid (file name, pose, model, seed); a photo's avatar
    set (several poses or variants) fills a row of its own."""
    from avatargen.output import emit_json, info, warn
    from avatargen.sheet import make_sheet

    result = make_sheet(folder, output, columns=columns, thumb=thumb, per_page=per_page)
    for path in result.unreadable:
        warn(f"{path}: not a readable image, shown as a blank cell")
    if json_:
        emit_json(result.to_dict())
        return
    width, height = result.size
    pages = len(result.pages)
    # Where, in full: the default -o is sheet.jpg in the current folder, easy to miss.
    where = Path(result.pages[0]).resolve().parent if result.pages else Path.cwd()
    info(
        f"{result.images} images on {pages} page{'s' if pages != 1 else ''} ({width}x{height} px), "
        f"written to {where}{os.sep}"
    )
    for path in result.pages:
        print(path)
