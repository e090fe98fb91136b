"""Contact sheets: a folder of results laid out as a labelled grid, so a person can review a
whole batch at a glance.

Each cell is a thumbnail (aspect kept, centred) over three label lines: the file name, the
pose and model, and the seed. Labels come from the PNG text chunks `write_output` puts in
every result (`avatargen` JSON first, the A1111 `parameters` text second); a file without
them is labelled by its name alone.

Sets: when a photo (or a --person) has several results (an avatar set of poses, variants), each
photo's set starts a row of its own (rows wrap past `columns`), grouped by the `input_hash` the
metadata records; a folder of one image per photo stays a plain grid.

Layout: one image per page of at most `per_page` cells (default 200, so a 200-image batch is
one scrollable sheet of 20 rows); a bigger folder gives `sheet-1.jpg`, `sheet-2.jpg`, ...
Pages are written through a temporary file and a rename.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from avatargen.errors import InputError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
OUTPUT_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
BACKGROUND = (24, 24, 24)
CELL_BACKGROUND = (40, 40, 40)
TEXT = (235, 235, 235)
MUTED = (160, 160, 160)
GAP = 8
# JPEG cannot exceed 65,535 px a side; stay well below so viewers cope.
MAX_SIDE = 60_000


@dataclass(frozen=True)
class Label:
    name: str
    pose: str = ""
    model: str = ""
    seed: str = ""

    def lines(self) -> list[str]:
        detail = " · ".join(part for part in (self.pose, f"seed {self.seed}" if self.seed else "") if part)
        return [self.name, detail, self.model]


_PARAM = re.compile(r"(?:^|[\s,])(Seed|Model|Pose):\s*([^,\n]+)")


def parse_parameters(text: str) -> dict[str, str]:
    """Seed, Model and Pose from A1111-style `parameters` text (its last line holds them)."""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return {key.lower(): value.strip() for key, value in _PARAM.findall(last)}


def _short_model(model: str) -> str:
    return model.removeprefix("avatar-generator:")


def _short_pose(pose: str) -> str:
    # A pose may be a template name, a file path or a URL: the last part says enough.
    return pose.rstrip("/").rsplit("/", 1)[-1] if pose else ""


def set_of(text_chunks: dict[str, str]) -> str | None:
    """Which photo's set an image belongs to: its input's content hash, from our metadata."""
    try:
        meta = json.loads(text_chunks.get("avatargen") or "null")
    except json.JSONDecodeError:
        return None
    return str(meta["input_hash"]) if isinstance(meta, dict) and meta.get("input_hash") else None


def rows_by_set(entries: list, sets: list[str | None], columns: int) -> tuple[list, int]:
    """(cells, columns): the entries with blank cells (None) padding each set to whole rows, sets
    in order of first appearance, the row as wide as the largest set (at most `columns`);
    unchanged when no set has more than one image."""
    groups: dict[object, list] = {}
    for index, (entry, key) in enumerate(zip(entries, sets, strict=True)):
        groups.setdefault(key if key is not None else ("alone", index), []).append(entry)
    widest = max((len(group) for group in groups.values()), default=0)
    if widest < 2:
        return entries, columns
    columns = min(columns, widest)
    laid: list = []
    for group in groups.values():
        laid += group + [None] * (-len(group) % columns)
    while laid and laid[-1] is None:
        laid.pop()
    return laid, columns


def label_for(path: Path, text_chunks: dict[str, str]) -> Label:
    """The label of one image from its PNG text chunks, falling back to its file name."""
    fields: dict[str, str] = {}
    raw = text_chunks.get("avatargen")
    if raw:
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError:
            meta = None
        if isinstance(meta, dict):
            fields = {k: str(meta[k]) for k in ("pose", "model", "seed") if meta.get(k) not in (None, "")}
    if not fields and text_chunks.get("parameters"):
        fields = parse_parameters(text_chunks["parameters"])
    return Label(
        name=path.name,
        pose=_short_pose(fields.get("pose", "")),
        model=_short_model(fields.get("model", "")),
        seed=fields.get("seed", ""),
    )


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def find_images(folder: Path, exclude: set[Path] = frozenset()) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder", "give the folder a batch wrote its images to")
    excluded = {p.resolve() for p in exclude}
    images = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
        and p.is_file()
        and p.resolve() not in excluded
    ]
    return sorted(images, key=_natural_key)


def page_paths(output: Path, pages: int) -> list[Path]:
    if pages == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{n}{output.suffix}") for n in range(1, pages + 1)]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fit_text(draw, text: str, font, width: int, middle: bool = False) -> str:
    """`text`, cut with an ellipsis so it fits `width` pixels; `middle` keeps both ends (file
    names differ at the start, the input photo, and at the end, model and seed)."""
    if draw.textlength(text, font=font) <= width:
        return text
    head, tail = (text[: len(text) // 2], text[len(text) // 2 :]) if middle else (text, "")
    while (head or tail) and draw.textlength(head + "…" + tail, font=font) > width:
        if middle and len(tail) >= len(head):
            tail = tail[1:]
        else:
            head = head[:-1]
    return head + "…" + tail


def _thumbnail(path: Path, thumb: int):
    """(thumbnail, text chunks) of one image; (None, {}) if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            chunks = dict(getattr(img, "text", {}) or {})
            img.draft("RGB", (thumb, thumb))  # JPEG: decode at reduced size, much faster
            img.thumbnail((thumb, thumb))
            if img.mode != "RGB":
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, CELL_BACKGROUND)
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat, chunks
            return img.copy(), chunks
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, {}


@dataclass(frozen=True)
class SheetResult:
    pages: list[Path]
    images: int
    unreadable: list[Path]
    columns: int
    thumb: int
    size: tuple[int, int]  # of the first page

    def to_dict(self) -> dict:
        return {
            "pages": [str(p) for p in self.pages],
            "images": self.images,
            "unreadable": [str(p) for p in self.unreadable],
            "columns": self.columns,
            "thumb": self.thumb,
            "size": list(self.size),
        }


def grid_geometry(count: int, columns: int, thumb: int) -> dict[str, int]:
    """Cell and page sizes for `count` images; also what tests check the sheet against."""
    font_size = max(10, thumb // 18)
    line_height = font_size + 4
    label_height = 3 * line_height + 4
    cell_w, cell_h = thumb, thumb + label_height
    cols = max(1, min(columns, count))
    rows = -(-count // cols)
    return {
        "font_size": font_size,
        "line_height": line_height,
        "cell_w": cell_w,
        "cell_h": cell_h,
        "columns": cols,
        "rows": rows,
        "width": GAP + cols * (cell_w + GAP),
        "height": GAP + rows * (cell_h + GAP),
    }


def _render_page(entries, columns: int, thumb: int):
    from PIL import Image, ImageDraw

    geo = grid_geometry(len(entries), columns, thumb)
    page = Image.new("RGB", (geo["width"], geo["height"]), BACKGROUND)
    draw = ImageDraw.Draw(page)
    font = _font(geo["font_size"])
    for index, entry in enumerate(entries):
        if entry is None:  # padding that ends a set's row
            continue
        image, label = entry
        row, col = divmod(index, geo["columns"])
        x = GAP + col * (geo["cell_w"] + GAP)
        y = GAP + row * (geo["cell_h"] + GAP)
        draw.rectangle([x, y, x + thumb - 1, y + thumb - 1], fill=CELL_BACKGROUND)
        if image is not None:
            page.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
        else:
            draw.text((x + 8, y + thumb // 2), "unreadable", fill=(230, 90, 90), font=font)
        for line_no, text in enumerate(label.lines()):
            if text:
                colour = TEXT if line_no == 0 else MUTED
                fitted = _fit_text(draw, text, font, thumb - 4, middle=line_no == 0)
                draw.text(
                    (x + 2, y + thumb + 3 + line_no * geo["line_height"]), fitted, fill=colour, font=font
                )
    return page


def _save_atomic(image, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        options = {"quality": 85, "optimize": True} if fmt in ("JPEG", "WEBP") else {"optimize": True}
        with open(tmp, "wb") as fh:
            image.save(fh, format=fmt, **options)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc})", "check the folder is writable") from None
    finally:
        tmp.unlink(missing_ok=True)


def make_sheet(
    folder: Path | str,
    output: Path | str,
    *,
    columns: int = 10,
    thumb: int = 256,
    per_page: int = 200,
) -> SheetResult:
    """Lay out the images of `folder` into one or more sheet pages at `output`."""
    folder, output = Path(folder), Path(output)
    fmt = OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(f"{output}: unknown image type (-o)", "end the name with .jpg, .png or .webp")
    if columns < 1:
        raise UsageError(f"--columns must be 1 or more, got {columns}")
    if not 32 <= thumb <= 1024:
        raise UsageError(f"--thumb must be between 32 and 1024 pixels, got {thumb}")
    if per_page < 1:
        raise UsageError(f"--per-page must be 1 or more, got {per_page}")
    geo_one_row = grid_geometry(1, 1, thumb)
    if GAP + columns * (geo_one_row["cell_w"] + GAP) > MAX_SIDE:
        raise UsageError(f"--columns {columns} makes the sheet wider than {MAX_SIDE} px", "use fewer columns")
    rows_cap = max(1, (MAX_SIDE - GAP) // (geo_one_row["cell_h"] + GAP))
    per_page = min(per_page, rows_cap * columns)

    # Earlier pages of this same sheet must not end up inside the new one.
    page_name = re.compile(rf"{re.escape(output.stem)}-\d+{re.escape(output.suffix)}")
    previous = {output, *(p for p in output.parent.glob("*") if page_name.fullmatch(p.name))}
    images = find_images(folder, exclude=previous)
    if not images:
        raise InputError(
            f"{folder}: no images to put on a sheet", f"it holds no {', '.join(IMAGE_SUFFIXES)} files"
        )

    chunks = [images[i : i + per_page] for i in range(0, len(images), per_page)]
    paths = page_paths(output, len(chunks))
    unreadable: list[Path] = []
    first_size, first_columns = (0, 0), min(columns, len(images))
    for page_no, (chunk, path) in enumerate(zip(chunks, paths, strict=True)):
        entries, sets = [], []
        for image_path in chunk:
            image, text = _thumbnail(image_path, thumb)
            if image is None:
                unreadable.append(image_path)
            entries.append((image, label_for(image_path, text)))
            sets.append(set_of(text))
        cells, page_columns = rows_by_set(entries, sets, columns)
        page = _render_page(cells, page_columns, thumb)
        if page_no == 0:
            first_size, first_columns = page.size, min(page_columns, len(cells))
        _save_atomic(page, path, fmt)
    return SheetResult(paths, len(images), unreadable, first_columns, thumb, first_size)
