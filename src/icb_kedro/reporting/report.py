"""One self-contained HTML study report: text, tables and figures in a single file.

Figures are embedded as base64 PNG data URIs, so the file can be mailed, opened from an
MLflow artifact listing, or archived without its folder. The same figures are also saved
as PNGs by the catalog (``data/08_reporting/report/figures``). :func:`check_report_images`
decodes every ``<img>`` of a rendered report (data URIs, or relative paths resolved against
the report's folder) and says which are missing, empty or not images; the report node and
the tests both call it, so a broken figure fails loudly instead of shipping.

Built with the standard library (``html``) plus ``markdown-it-py`` (installed with
``rich``) for Markdown text such as the evaluation layer's summary section.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMG_SRC = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.IGNORECASE)


@dataclass(frozen=True)
class Text:
    """A paragraph block: Markdown (tables allowed), rendered to HTML."""

    markdown: str


@dataclass(frozen=True)
class Table:
    """A DataFrame shown as an HTML table (first ``max_rows`` rows; the total is stated)."""

    frame: pd.DataFrame
    caption: str = ""
    max_rows: int = 30
    digits: int = 3


@dataclass(frozen=True)
class Image:
    """A figure; ``name`` is its file stem among the saved PNGs (unique within a report)."""

    name: str
    figure: Figure | bytes
    caption: str = ""


@dataclass(frozen=True)
class NotRun:
    """Placeholder for an analysis whose inputs were not produced (e.g. a model not run)."""

    what: str
    reason: str


Block = Text | Table | Image | NotRun


@dataclass
class Section:
    """A titled report section made of blocks, optionally with sub-sections."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of checking one ``<img>`` of a rendered report."""

    src: str
    ok: bool
    detail: str


def figure_png(figure: Figure | bytes, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib Figure (bytes are returned unchanged after a signature check)."""
    if isinstance(figure, bytes):
        data = figure
    else:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        data = buffer.getvalue()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("figure bytes are not a PNG image")
    return data


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _format_cell(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "NA"
        magnitude = abs(float(value))
        if magnitude != 0 and (magnitude < 10 ** (-digits) or magnitude >= 1e6):
            return f"{float(value):.{max(digits - 1, 1)}e}"
        return f"{float(value):.{digits}f}"
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "NA"
    return str(value)


def _table_html(block: Table) -> str:
    frame = block.frame
    shown = frame.head(block.max_rows)
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_format_cell(v, block.digits))}</td>" for v in row)
        + "</tr>"
        for row in shown.itertuples(index=False)
    )
    note = f" (first {len(shown)} of {len(frame)} rows)" if len(frame) > len(shown) else ""
    caption = (
        f"<caption>{html.escape(block.caption)}{html.escape(note)}</caption>"
        if block.caption or note
        else ""
    )
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{header}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _block_html(block: Block, dpi: int) -> str:
    if isinstance(block, Text):
        return _markdown_html(block.markdown)
    if isinstance(block, Table):
        if block.frame.empty:
            return f'<p class="empty">{html.escape(block.caption or "table")}: no rows.</p>'
        return _table_html(block)
    if isinstance(block, Image):
        encoded = base64.b64encode(figure_png(block.figure, dpi)).decode("ascii")
        caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
        return (
            f'<figure id="fig-{_slug(block.name)}"><img src="data:image/png;base64,{encoded}" '
            f'alt="{html.escape(block.caption or block.name)}">{caption}</figure>'
        )
    if isinstance(block, NotRun):
        return (
            f'<p class="not-run"><strong>{html.escape(block.what)}: not run.</strong> '
            f"{html.escape(block.reason)}</p>"
        )
    raise ValueError(f"unknown report block type {type(block).__name__}")


def _section_html(section: Section, level: int, dpi: int, prefix: str) -> str:
    anchor = f"{prefix}{_slug(section.title)}"
    parts = [f'<section id="{anchor}"><h{level}>{html.escape(section.title)}</h{level}>']
    parts += [_block_html(block, dpi) for block in section.blocks]
    parts += [
        _section_html(sub, min(level + 1, 6), dpi, anchor + "--") for sub in section.subsections
    ]
    parts.append("</section>")
    return "\n".join(parts)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;font-size:0.82em;margin:0.6em 0}\
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}caption{caption-side:top;text-align:left;font-style:italic;padding:2px}
.table-wrap{overflow-x:auto}figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}\
figcaption{font-size:0.85em;color:#555}
.not-run{background:#fff4e5;border-left:4px solid #f0a030;padding:4px 8px}.empty{color:#777}
nav ul{columns:2;font-size:0.9em}code{background:#f4f4f4;padding:0 3px}
"""


def render_report(
    title: str, sections: Sequence[Section], *, intro: str = "", dpi: int = 110
) -> str:
    """The whole report as one HTML string (figures embedded as base64 PNG)."""
    names = [b.name for b in _iter_images(sections)]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"report figure names must be unique, repeated: {duplicated}")
    toc = "".join(
        f'<li><a href="#{_slug(s.title)}">{html.escape(s.title)}</a></li>' for s in sections
    )
    body = "\n".join(_section_html(s, 2, dpi, "") for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{_markdown_html(intro) if intro else ''}"
        f"<nav><strong>Contents</strong><ul>{toc}</ul></nav>\n{body}\n</body></html>\n"
    )


def _iter_images(sections: Iterable[Section]) -> Iterable[Image]:
    for section in sections:
        yield from (b for b in section.blocks if isinstance(b, Image))
        yield from _iter_images(section.subsections)


def report_figures(sections: Sequence[Section]) -> dict[str, Figure | bytes]:
    """Every figure of the report by name, for saving as separate PNGs."""
    return {image.name: image.figure for image in _iter_images(sections)}


def rasterise(sections: Sequence[Section], dpi: int = 110) -> list[Section]:
    """The same sections with every figure replaced by its PNG bytes.

    Drawing a figure is the slow part of the report (about a second per figure here);
    rendering once and reusing the bytes for the HTML and for the PNG files halves it.
    """

    def convert(section: Section) -> Section:
        blocks = [
            Image(b.name, figure_png(b.figure, dpi), b.caption) if isinstance(b, Image) else b
            for b in section.blocks
        ]
        return Section(section.title, blocks, [convert(sub) for sub in section.subsections])

    return [convert(section) for section in sections]


def _png_size(data: bytes) -> tuple[int, int, bool]:
    """(width, height, blank): blank = every pixel the same colour (an empty canvas)."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as picture:
        picture.verify()
    with PILImage.open(io.BytesIO(data)) as picture:
        extrema = picture.convert("RGB").getextrema()
        return (*picture.size, all(low == high for low, high in extrema))


def check_report_images(report_html: str, base_dir: str | Path | None = None) -> list[ImageCheck]:
    """Check every ``<img src>`` of a report: decodable, a real PNG/image, non-empty, > 1x1 px,
    and not blank (a canvas of one colour: a figure that drew nothing).

    Data URIs are decoded; other sources are paths relative to ``base_dir`` (the report's
    folder) and must exist as non-empty image files.
    """
    checks = []
    for src in _IMG_SRC.findall(report_html):
        try:
            if src.startswith("data:"):
                header, _, payload = src.partition(",")
                if ";base64" not in header:
                    raise ValueError("data URI is not base64")
                data = base64.b64decode(payload, validate=True)
            else:
                if base_dir is None:
                    raise ValueError("relative image path but no base_dir given")
                path = Path(base_dir) / src
                if not path.is_file():
                    raise ValueError(f"file {path} does not exist")
                data = path.read_bytes()
            if not data:
                raise ValueError("image is empty")
            width, height, blank = _png_size(data)
            if width < 2 or height < 2:
                raise ValueError(f"image is only {width}x{height} pixels")
            if blank:
                raise ValueError(f"image is blank ({width}x{height} pixels of one colour)")
            checks.append(ImageCheck(src[:60], True, f"{width}x{height} px, {len(data)} bytes"))
        except (
            Exception
        ) as error:  # any decoding problem is a failed check, reported with its cause
            checks.append(ImageCheck(src[:60], False, str(error)))
    return checks


def assert_report_images(report_html: str, base_dir: str | Path | None = None) -> int:
    """Raise ValueError listing every broken image; return the number of images checked."""
    checks = check_report_images(report_html, base_dir)
    broken = [c for c in checks if not c.ok]
    if broken:
        listing = "; ".join(f"{c.src}: {c.detail}" for c in broken[:10])
        raise ValueError(f"{len(broken)} of {len(checks)} report images are broken: {listing}")
    return len(checks)


def table_block(
    frame: pd.DataFrame | None, caption: str, columns: Sequence[str] | None = None, **kwargs
) -> Block:
    """A Table block, or a NotRun block when the frame is missing."""
    if frame is None:
        return NotRun(caption, "its input table was not produced")
    shown = frame[[c for c in columns if c in frame.columns]] if columns else frame
    return Table(shown, caption, **kwargs)
