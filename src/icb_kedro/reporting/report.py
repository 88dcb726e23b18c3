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
    return f'<div class="table-wrap"><table>{caption}<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


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
        return f'<p class="not-run"><strong>{html.escape(block.what)}: not run.</strong> {html.escape(block.reason)}</p>'
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
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;font-size:0.82em;margin:0.6em 0}th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}caption{caption-side:top;text-align:left;font-style:italic;padding:2px}
.table-wrap{overflow-x:auto}figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.85em;color:#555}
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


# ============================================================================ the study report


@dataclass
class StudyInputs:
    """Everything the study report shows; ``None`` = that analysis was not run."""

    cohort_summary: pd.DataFrame | None = None
    pca_figure: Figure | None = None
    coverage_figure: Figure | None = None
    predictions: pd.DataFrame | None = None
    cohort_table: pd.DataFrame | None = None
    overall: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    meta: pd.DataFrame | None = (
        None  # evaluation.meta_analysis: random-effects pool per (model, protocol)
    )
    calibration: pd.DataFrame | None = (
        None  # evaluation.calibration: Brier decomposition, slope per scope
    )
    evaluation_markdown: str | None = None
    evaluation_source: str = ""
    pretrain_history: pd.DataFrame | None = None
    sample_size: pd.DataFrame | None = None
    learning_summary: pd.DataFrame | None = None
    amu_learning: pd.DataFrame | None = None  # amu_learning_check: one row per AMU fit
    shap_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    rankings: pd.DataFrame | None = None
    overlap: pd.DataFrame | None = None
    stability: pd.DataFrame | None = None  # shap_analysis.top_k_stability per (protocol, model)
    ic2bert_importance: pd.DataFrame | None = None
    ic2bert_frequency: pd.DataFrame | None = None
    embedding_map: pd.DataFrame | None = None
    embedding_pairs: pd.DataFrame | None = None
    embedding_summary: pd.DataFrame | None = None
    embedding_cosine: pd.DataFrame | None = None
    enrichment: pd.DataFrame | None = None
    cox: pd.DataFrame | None = None
    cox_null: pd.DataFrame | None = None  # survival.random_gene_null per endpoint
    km: pd.DataFrame | None = None
    km_figures: dict[str, Figure] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)


SETTING_TITLES = {
    "study": "AMU study setting (207 melanoma samples, the paper's 160 genes; amu_holdout test splits)",
    "cohorts": "The cohorts (SVM/XGBoost/AMU: each cohort held out in turn; IC2Bert: its fine-tuned transfer test split)",
}
PROTOCOL_TITLES = {
    "amu_holdout": "AMU study setting (207 melanoma samples, 160 genes, held-out 20% splits)",
    "loco": "Every cohort held out in turn (leave-one-cohort-out): trained on the other cohorts only",
    "transfer": (
        "Transfer, out of fold: trained on the other cohorts + 4 of 5 stratified folds of the held-out cohort "
        "(IC2Bert: its readout on those folds), every patient of the held-out cohort scored once per repeat"
    ),
    "within": "Within-cohort, out of fold: 4 of 5 stratified folds of the held-out cohort, every patient scored once per repeat",
    "transfer_paper": "Transfer on the IC2Bert paper's stratified 80/20 splits (kept to compare with the paper; 3-8 test patients in most cohorts)",
}


def _present(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def _safe_figure(name: str, draw, caption: str) -> Block:
    """Draw a figure; a drawing error becomes a visible NotRun block naming the cause."""
    try:
        return Image(name, draw(), caption)
    except ValueError as error:
        return NotRun(caption, f"figure could not be drawn: {error}")


def _section_cohorts(inputs: StudyInputs) -> Section:
    section = Section("Cohorts and harmonization")
    n = len(inputs.cohort_summary) if _present(inputs.cohort_summary) else 0
    rule = (
        str(inputs.cohort_summary["label_rule"].iloc[0])
        if n and "label_rule" in inputs.cohort_summary
        else "response"
    )
    section.add(
        Text(
            f"{n} bulk RNA-seq ICB cohorts (bhklab PredictioR curation), log2(TPM+1). Each model reads its own gene panel; "
            "a gene a cohort does not measure is never made up here: each model's missing-gene policy says what it does "
            "(IC2Bert: a [MISSING] token; AMU: the cohort is left out; baselines: training-row means; signatures: the panel "
            f"shared by all cohorts). Labels: `{rule}` (counts under the strict RECIST rule beside them). Unlabelled samples "
            "are used only for self-supervised pretraining."
        )
    )
    if n:
        # Settings shared by every cohort (label rule, standardization, ComBat) are said once,
        # not repeated in each row; one-arm cohorts show "-" for arms.
        table = inputs.cohort_summary.copy()
        shared = [
            c
            for c in ("label_rule", "standardization", "combat")
            if c in table and table[c].nunique(dropna=False) == 1
        ]
        if shared:
            section.add(
                Text(
                    "Every cohort: "
                    + "; ".join(f"{c.replace('_', ' ')}: {table[c].iloc[0]}" for c in shared)
                    + "."
                )
            )
        if "arms" in table:
            table["arms"] = table["arms"].fillna("-").replace("", "-")
        section.add(
            table_block(
                table.drop(columns=shared),
                "Samples per cohort: cancer, therapy, study arms, labels, genes on file and per model panel",
                max_rows=20,
            )
        )
    if inputs.coverage_figure is not None:
        section.add(
            Image(
                "panel_coverage",
                inputs.coverage_figure,
                "Genes of each model panel measured per cohort (number; colour = share of the panel).",
            )
        )
    if inputs.pca_figure is not None:
        section.add(
            Image(
                "harmonization_pca",
                inputs.pca_figure,
                "PCA of all samples before and after per-cohort standardisation and ComBat (coloured by cohort).",
            )
        )
    else:
        section.add(
            NotRun("Harmonization PCA", "the harmonized expression tables were not available")
        )
    return section


def _section_performance(inputs: StudyInputs) -> Section:
    from icb_kedro.reporting import plots

    section = Section("Prediction performance")
    if not _present(inputs.predictions):
        return section.add(
            NotRun("Model evaluation", "no model pipeline has written predictions yet")
        )
    if inputs.evaluation_source:
        section.add(Text(inputs.evaluation_source))
    if _present(inputs.meta):
        # Leads the section: the pooled estimate that accounts for between-cohort
        # heterogeneity (issue 14); the unweighted means and per-cohort tables follow.
        section.add(
            Text(
                "Random-effects meta-analysis of AUROC across cohorts (DerSimonian-Laird): each cohort's AUROC weighted by "
                "1 / (its patient-bootstrap variance + tau²). I² is the share of the spread between cohorts that is not "
                "sampling noise; cohorts whose test rows hold one class are listed as not estimable."
            )
        )
        for protocol in [
            p
            for p in ("transfer", "loco", "within", "amu_holdout")
            if (inputs.meta["protocol"] == p).any()
        ]:
            if inputs.meta.loc[inputs.meta["protocol"] == protocol, "pooled_auroc"].notna().any():
                section.add(
                    _safe_figure(
                        f"meta_forest_{protocol}",
                        lambda p=protocol: plots.plot_meta_forest(inputs.meta, p),
                        f"Pooled AUROC per model (95% CI, k cohorts, I², tau²), protocol {protocol}.",
                    )
                )
    if inputs.evaluation_markdown:
        section.add(Text(inputs.evaluation_markdown))
    if _present(inputs.overall):
        section.add(
            _safe_figure(
                "overall_auroc",
                lambda: plots.plot_overall_auroc(inputs.overall),
                "Unweighted mean AUROC over cohorts with patient-level bootstrap 95% CI.",
            )
        )
        shown = inputs.overall.sort_values(["protocol", "auroc_mean"], ascending=[True, False])
        section.add(
            Table(
                shown[
                    [
                        c
                        for c in (
                            "protocol",
                            "model",
                            "n_cohorts",
                            "auroc_mean",
                            "ci_low",
                            "ci_high",
                            "auprc_mean",
                            "accuracy_mean",
                            "f1_mean",
                            "brier_mean",
                        )
                        if c in shown.columns
                    ]
                ],
                "Overall AUROC per model and protocol",
                max_rows=200,
            )
        )
    section.subsections.append(_section_calibration(inputs))
    for protocol in sorted(inputs.predictions["protocol"].unique()):
        sub = Section(f"Protocol {protocol}")
        sub.add(Text(PROTOCOL_TITLES.get(protocol, protocol)))
        if _present(inputs.cohort_table) and (inputs.cohort_table["protocol"] == protocol).any():
            sub.add(
                _safe_figure(
                    f"cohort_auroc_{protocol}",
                    lambda p=protocol: plots.plot_cohort_auroc(inputs.cohort_table, p),
                    f"Per-cohort AUROC (mean over repeats, 95% CI), protocol {protocol}.",
                )
            )
        sub.add(
            _safe_figure(
                f"roc_pr_{protocol}",
                lambda p=protocol: plots.plot_roc_pr_curves(inputs.predictions, p),
                f"ROC and precision-recall curves pooled over cohorts and repeats, protocol {protocol}.",
            )
        )
        if _present(inputs.comparisons):
            significant = inputs.comparisons[
                (inputs.comparisons["protocol"] == protocol)
                & inputs.comparisons["significant"].astype(bool)
            ]
            tested = inputs.comparisons[inputs.comparisons["protocol"] == protocol]
            sub.add(
                Text(
                    f"Paired AUROC comparisons (DeLong per cohort, combined across cohorts, BH): {len(significant)} of {len(tested)} tests have q < 0.05."
                )
            )
            if len(significant):
                sub.add(
                    Table(
                        significant[
                            [
                                "model_a",
                                "model_b",
                                "cohort",
                                "auroc_a",
                                "auroc_b",
                                "diff",
                                "ci_low",
                                "ci_high",
                                "p",
                                "q",
                            ]
                        ],
                        "Significant paired differences",
                        max_rows=40,
                    )
                )
        section.subsections.append(sub)
    return section


def _section_calibration(inputs: StudyInputs) -> Section:
    """Reliability curves and the Brier decomposition: does P(response) = 0.7 mean 7 in 10?"""
    from icb_kedro.reporting import plots

    section = Section("Calibration")
    if not _present(inputs.calibration):
        return section.add(
            NotRun("Calibration", "the evaluation pipeline has not written results_calibration")
        )
    pooled = inputs.calibration[inputs.calibration["scope"] == "pooled"]
    n_bins = int(
        pooled["n_bins"].max()
    )  # as configured (a model with tied probabilities may use fewer)
    section.add(
        Text(
            f"Brier score = reliability - resolution + uncertainty (+ within-bin variance), over {n_bins} quantile bins of the "
            "predicted probability, held-out cohorts pooled: reliability (lower is better) is the gap between predicted and "
            "observed response rates, resolution (higher is better) how well the bins separate, uncertainty the Brier score "
            "of predicting the prevalence. Calibration slope: logistic recalibration of the outcome on logit(p); 1 is ideal, "
            "below 1 means probabilities too extreme (overfitting), above 1 too timid. Calibration-in-the-large: observed rate "
            "minus mean predicted probability. No post-hoc recalibration is applied: probabilities are as the models give them."
        )
    )
    for protocol in [
        p for p in ("transfer", "loco", "within", "amu_holdout") if (pooled["protocol"] == p).any()
    ]:
        if _present(inputs.predictions) and (inputs.predictions["protocol"] == protocol).any():
            section.add(
                _safe_figure(
                    f"reliability_{protocol}",
                    lambda p=protocol: plots.plot_reliability(inputs.predictions, p, n_bins=n_bins),
                    f"Reliability curves, protocol {protocol} (published signatures left out: their probabilities are rescaled scores).",
                )
            )
    columns = [
        "protocol",
        "model",
        "n",
        "observed_rate",
        "mean_prob",
        "calibration_in_the_large",
        "calibration_slope",
        "brier",
        "reliability",
        "resolution",
        "uncertainty",
    ]
    shown = pooled.sort_values(["protocol", "brier"])[columns]
    section.add(
        Table(
            shown,
            "Calibration per model and protocol, held-out cohorts pooled (per-cohort rows: results_calibration)",
            max_rows=200,
        )
    )
    return section


def pretraining_verdict(summary: pd.DataFrame, margin: float = 0.02) -> list[str]:
    """One plain sentence per protocol: did pretraining help (IC2Bert vs its random-init and
    token-LR ablations on the same folds, mean held-out AUROC over cohorts)?"""
    lines = []
    table = summary.set_index(["protocol", "model"])["test_auroc"]
    for protocol in sorted(summary["protocol"].unique()):
        if (protocol, "ic2bert") not in table.index:
            continue
        ours = float(table[(protocol, "ic2bert")])
        others = {
            m: float(table[(protocol, m)])
            for m in ("ic2bert_random_init", "ic2bert_token_lr")
            if (protocol, m) in table.index
        }
        if not others:
            continue
        best_name, best = max(others.items(), key=lambda kv: kv[1])
        verdict = (
            "helped"
            if ours > best + margin
            else "did not help measurably"
            if ours >= best - margin
            else "hurt"
        )
        compared = ", ".join(f"{m} {v:.3f}" for m, v in others.items())
        lines.append(
            f"{protocol}: pretrained IC2Bert {ours:.3f} vs {compared}: pretraining {verdict} (margin {margin:.2f} AUROC)."
        )
    return lines


def _section_ic2bert_training(inputs: StudyInputs) -> Section:
    section = Section("IC2Bert: does it learn, and does pretraining help?")
    if _present(inputs.learning_summary):
        summary = inputs.learning_summary
        section.add(
            Text(
                " ".join(pretraining_verdict(summary))
                or "No ablation ran, so the benefit of pretraining is not measured."
            )
        )
        section.add(
            Table(
                summary,
                "Learning check (mean over held-out cohorts): training fit, inner-CV AUROC, held-out AUROC and spread of held-out probabilities, for IC2Bert and its ablations on the same folds",
                max_rows=40,
            )
        )
    else:
        section.add(NotRun("Learning check", "no IC2Bert learning-check table was found"))
    if _present(inputs.pretrain_history):
        section.add(
            _safe_figure(
                "ic2bert_mlm_accuracy",
                lambda: plot_mlm_accuracy(inputs.pretrain_history),
                "Masked-token accuracy on the held-out MLM validation rows by number of expression bins.",
            )
        )
    else:
        section.add(NotRun("MLM accuracy vs n_bins", "no IC2Bert pretraining history was found"))
    if _present(inputs.sample_size):
        section.add(
            _safe_figure(
                "ic2bert_sample_size",
                lambda: plot_sample_size(inputs.sample_size),
                "Test AUROC by number of labelled training samples of the held-out cohort (mean and spread over draws).",
            )
        )
    else:
        section.add(NotRun("Sample-size curves", "no sample-size analysis output was found"))
    return section


def amu_learning_table(
    learning: pd.DataFrame, overall: pd.DataFrame | None, fits_below: float = 0.7
) -> tuple[pd.DataFrame, list[str]]:
    """Per protocol: AMU's training fit and held-out AUROC beside L2-LR's on the same folds,
    and one plain sentence each on whether AMU fitted its training rows at all."""
    table = (
        learning.groupby("protocol")
        .agg(
            fits=("train_auroc", "size"),
            epochs=("epochs", "max"),
            train_auroc=("train_auroc", "mean"),
            train_auroc_min=("train_auroc", "min"),
            test_auroc=("test_auroc", "mean"),
            final_loss=("final_loss", "mean"),
        )
        .reset_index()
    )
    logreg = {}
    if _present(overall):
        rows = overall[overall["model"] == "logreg"]
        logreg = dict(zip(rows["protocol"], rows["auroc_mean"]))
    table["logreg_test_auroc"] = table["protocol"].map(logreg)
    lines = []
    for row in table.itertuples():
        verdict = (
            "does not fit its training rows"
            if row.train_auroc < fits_below
            else "fits its training rows"
        )
        lines.append(
            f"{row.protocol}: AMU {verdict} (mean training AUROC {row.train_auroc:.3f} after {row.epochs} epochs, "
            f"final training loss {row.final_loss:.2f}); held-out AUROC {row.test_auroc:.3f}."
        )
    return table.round(3), lines


def _section_amu_training(inputs: StudyInputs) -> Section:
    section = Section("AMU: does it learn?")
    if not _present(inputs.amu_learning):
        section.add(NotRun("Learning check", "no AMU learning-check table was found"))
        return section
    table, lines = amu_learning_table(inputs.amu_learning, inputs.overall)
    section.add(
        Text(
            "\n".join(f"- {line}" for line in lines)
            + "\n\nA model that does not fit its training rows says nothing about transfer or leakage: read its held-out AUROC as an untrained model's."
        )
    )
    section.add(
        Table(
            table,
            "AMU learning check (amu_learning_check, one row per fit, averaged per protocol): training AUROC on the real training rows, held-out AUROC (mean over splits/cohorts), and L2 logistic regression's held-out AUROC on the protocol (mean over all of its splits, which may be more than AMU's)",
            max_rows=20,
        )
    )
    return section


def _stability_table(stability: pd.DataFrame, top_k: int) -> Block:
    """Each model's top genes with how often they stay in its top k (bootstrap of the explained
    rows; share of folds) and their rank's 95% interval: a single ranking hides that."""
    k = int(stability["k"].iloc[0])
    shown = stability[stability["rank"] <= top_k].copy()
    shown["rank 95% interval"] = [
        f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(shown["rank_ci_low"], shown["rank_ci_high"])
    ]
    shown = shown.rename(
        columns={
            "bootstrap_top_k": f"in top {k} (bootstrap)",
            "fold_top_k": f"in top {k} (share of folds)",
        }
    )
    columns = [
        "model",
        "gene",
        "rank",
        "rank 95% interval",
        f"in top {k} (bootstrap)",
        f"in top {k} (share of folds)",
        "n_folds",
    ]
    caption = (
        f"Stability of the top-{top_k} genes: share of {int(stability['n_boot'].iloc[0])} bootstrap resamples of the explained "
        f"rows (within folds) and share of the folds whose own rows put the gene in the model's top {k}"
    )
    return Table(
        shown.sort_values(["model", "rank"])[columns],
        caption,
        max_rows=top_k * stability["model"].nunique(),
    )


def _section_shap(inputs: StudyInputs, top_k: int) -> Section:
    from icb_kedro.interpretation import shap_analysis

    section = Section("Which genes drive the predictions (SHAP)")
    section.add(
        Text(
            "SHAP values are computed on the **test rows** of stored folds, for models fitted on those folds' training rows only, "
            "with a background summarised (k-means) from the training rows. SVM, AMU and IC2Bert: KernelSHAP on P(responder); "
            "XGBoost: exact TreeSHAP (log-odds units). Genes are ranked by mean |SHAP| over the explained rows; colour/sign = "
            "correlation of a gene's expression with its SHAP value (red: higher expression favours response)."
        )
    )
    if not _present(inputs.rankings):
        return section.add(
            NotRun("SHAP", "no model could be explained (see the list of missing inputs above)")
        )
    for setting, rows in inputs.rankings.groupby("setting", sort=True):
        sub = Section(SETTING_TITLES.get(setting, setting))
        protocols = rows.groupby("model")["protocol"].first()
        sub.add(
            Text("Folds explained: " + "; ".join(f"{m}: `{p}`" for m, p in protocols.items()) + ".")
        )
        top = rows[(rows["rank"] <= top_k) & (rows["mean_abs_shap"] > 0)].sort_values(
            ["model", "rank"]
        )
        # A model explained under two protocols (IC2Bert: transfer, transfer_paper) gets a column each.
        several = top.groupby("model")["protocol"].transform("nunique") > 1
        top = top.assign(
            column=top["model"].where(~several, top["model"] + " (" + top["protocol"] + ")")
        )
        grid = top.pivot(index="rank", columns="column", values="gene").reset_index()
        sub.add(Table(grid, f"Top-{top_k} genes by mean |SHAP| per model", max_rows=top_k))
        if _present(inputs.overlap):
            mine = inputs.overlap[inputs.overlap["setting"] == setting]
            for k in sorted(mine["k"].unique()):
                at_k = mine[mine["k"] == k]
                n_models = int(at_k["n_models_compared"].max())
                shared = at_k.loc[at_k["in_all"].astype(bool), "gene"].tolist()
                text = (
                    f"**Intersection of the {n_models} models' top-{k} lists**: "
                    + (", ".join(shared) if shared else "empty")
                    + "."
                )
                partial = at_k[(at_k["n_models"] >= 2) & ~at_k["in_all"].astype(bool)]
                if n_models > 2:
                    text += (
                        f" In the top-{k} of at least two models: "
                        + (
                            ", ".join(
                                f"{g} ({m})" for g, m in zip(partial["gene"], partial["models"])
                            )
                            or "none"
                        )
                        + "."
                    )
                sub.add(Text(text))
        if _present(inputs.stability) and (inputs.stability["setting"] == setting).any():
            sub.add(
                _stability_table(inputs.stability[inputs.stability["setting"] == setting], top_k)
            )
        n_protocols = rows.groupby("model")["protocol"].nunique()
        for (protocol, model), ranking in rows.groupby(["protocol", "model"], sort=True):
            name = (
                model if n_protocols[model] == 1 else f"{model}_{protocol}"
            )  # figure names are unique
            sub.add(
                _safe_figure(
                    f"shap_bar_{setting}_{name}",
                    lambda r=ranking, m=model, p=protocol: shap_analysis.plot_shap_bar(
                        r, f"{m} ({p}): mean |SHAP|", max_display=top_k * 2
                    ),
                    f"{model}: mean |SHAP| of the top genes ({int(ranking['n_rows'].iloc[0])} test rows).",
                )
            )
            table = inputs.shap_tables.get(f"{protocol}:{model}")
            if _present(table):
                order = ["cohort", "trial", "sample_key"]
                genes = [
                    c
                    for c in table.columns
                    if c
                    not in ("model", "protocol", "cohort", "trial", "sample_key", "y_true", "kind")
                ]
                shap_rows = table[table["kind"] == "shap"].sort_values(order)
                feature_rows = table[table["kind"] == "feature"].sort_values(order)
                genes = [g for g in genes if shap_rows[g].notna().all()]
                sub.add(
                    _safe_figure(
                        f"shap_beeswarm_{setting}_{name}",
                        lambda s=shap_rows, f=feature_rows, g=genes, m=model, p=protocol: (
                            shap_analysis.plot_shap_beeswarm(
                                s[g].to_numpy(float),
                                f[g].to_numpy(float),
                                g,
                                f"{m} ({p})",
                                max_display=top_k * 2,
                            )
                        ),
                        f"{model}: SHAP value per test row (colour: the model's input value of the gene).",
                    )
                )
        section.subsections.append(sub)
    return section


def _section_ic2bert_importance(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import importance

    section = Section("IC2Bert gene importance (attention and permutation)")
    section.add(
        Text(
            "As in the IC2Bert paper: attention importance = the softmax attention probability each gene receives, averaged over "
            "layers, heads, query positions and test samples, normalised to sum 1 (the original code averaged block outputs "
            "instead); permutation importance = drop in test AUROC when the gene is permuted (mean over R permutations), "
            "normalised by the sum of absolute values; combined = 0.4 x attention + 0.6 x permutation. Frequencies count the "
            "held-out cohorts whose top-k list contains the gene (the paper's Table 7)."
        )
    )
    if not _present(inputs.ic2bert_importance):
        return section.add(
            NotRun("IC2Bert importance", "no fine-tuned IC2Bert fold models were found")
        )
    permuted = inputs.ic2bert_importance.groupby("held_out")["auroc_drop"].apply(
        lambda d: int(d.notna().sum())
    )
    n_genes = int(inputs.ic2bert_importance.groupby("held_out").size().max())
    folds = inputs.ic2bert_importance.groupby("held_out")[["protocol", "trial", "n_test"]].first()
    section.add(
        Text(
            "Models: the fine-tuned model chosen per held-out cohort ("
            + "; ".join(
                f"{h.rsplit('_', 1)[-1]}: {r.protocol} trial {r.trial}, {r.n_test} test rows"
                for h, r in folds.iterrows()
            )
            + "). "
            + (
                f"Permutation importance was computed for the {int(permuted.max())} genes with the most attention per cohort (cost cap; "
                f"the other {n_genes - int(permuted.max())} genes count 0), not for all genes as in the paper."
                if 0 < permuted.max() < n_genes
                else ""
            )
            + (
                " Cohorts whose test split holds one class have no AUROC: their permutation part is 0."
                if (permuted == 0).any()
                else ""
            )
        )
    )
    if _present(inputs.ic2bert_frequency):
        section.add(
            Table(inputs.ic2bert_frequency, "Top-k frequency across held-out cohorts", max_rows=30)
        )
        section.add(
            _safe_figure(
                "ic2bert_top10_frequency",
                lambda: importance.plot_top_k_frequency(inputs.ic2bert_frequency, k=10),
                "Held-out cohorts with the gene among their top-10 combined importance.",
            )
        )
    top = inputs.ic2bert_importance[inputs.ic2bert_importance["rank"] <= 10]
    section.add(
        Table(
            top.pivot(index="rank", columns="held_out", values="gene").reset_index(),
            "Top-10 genes per held-out cohort (combined importance)",
            max_rows=10,
        )
    )
    pooled = (
        inputs.ic2bert_importance.groupby("gene")[["attention", "permutation", "combined"]]
        .mean()
        .reset_index()
    )
    section.add(
        _safe_figure(
            "ic2bert_importance_components",
            lambda: importance.plot_importance_components(pooled.assign(rank=0)),
            "Attention vs permutation importance, averaged over held-out cohorts (top-10 combined labelled).",
        )
    )
    return section


def _embedding_drift_text(summary: pd.DataFrame | None, alpha: float = 0.05) -> str | None:
    """One sentence: how far training moved the embedding from its initialisation, and
    whether the neighbour statistics reach another verdict than the untrained table's."""
    if not _present(summary) or "embedding" not in summary.columns:
        return None
    trained = summary[summary["embedding"] == "trained"].set_index("statistic")
    initial = summary[summary["embedding"] == "initial"].set_index("statistic")
    if trained.empty:
        return None
    if initial.empty or not np.isfinite(trained["relative_drift"]).any():
        return (
            "**Drift from initialisation**: not measured (the analysed embedding is an exported table without its "
            "training seed), so the statistics below cannot be told apart from those of a random initialisation."
        )
    drift = float(trained["relative_drift"].iloc[0])
    shared = float(trained["neighbour_pairs_shared"].iloc[0])
    names = [name for name in trained.index if name in initial.index]
    compared = "; ".join(
        f"{name.replace('_', ' ')} {trained.loc[name, 'observed']:.3f} (p = {trained.loc[name, 'p_value']:.3g}) vs "
        f"{initial.loc[name, 'observed']:.3f} (p = {initial.loc[name, 'p_value']:.3g})"
        for name in names
    )
    changed = [
        name.replace("_", " ")
        for name in names
        if (trained.loc[name, "p_value"] < alpha) != (initial.loc[name, "p_value"] < alpha)
    ]
    significant = [name for name in names if trained.loc[name, "p_value"] < alpha]
    if changed:
        verdict = (
            f"another verdict at p < {alpha:g} than the untrained table for {', '.join(changed)}"
        )
    elif significant:
        verdict = f"the same verdicts at p < {alpha:g} as the untrained table, so the associations found cannot be credited to training"
    else:
        verdict = (
            f"the same verdicts at p < {alpha:g} as the untrained table (no association in either)"
        )
    return (
        f"**Drift from initialisation**: training moved the embedding by ‖E − E₀‖ / ‖E₀‖ = {drift:.3g} from the table the "
        f"network was initialised with (same seed, rebuilt exactly), {100 * shared:.0f}% of its nearest-neighbour pairs are "
        f"already neighbours there, and the statistics of the trained vs the initial embedding ({compared}) give {verdict}."
    )


def _section_embeddings(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import embeddings

    section = Section("AMU gene embeddings")
    if not _present(inputs.embedding_map):
        return section.add(
            NotRun("AMU gene embeddings", "no fitted AMU network or exported embedding was found")
        )
    section.add(
        Text(
            "AMU learns one 20-d identity vector per gene. Below: a t-SNE map (cosine metric, coloured by average-linkage "
            "hierarchical cluster), the clustered cosine-similarity matrix, and whether embedding neighbours are co-expressed "
            "(Spearman on the AMU matrix) or share a shipped ICB signature more than random gene pairs (gene-label permutation test)."
        )
    )
    section.add(
        _safe_figure(
            "amu_embedding_tsne",
            lambda: embeddings.plot_tsne(
                inputs.embedding_map[["gene", "tsne_1", "tsne_2"]],
                inputs.embedding_map[["gene", "cluster"]],
            ),
            "t-SNE of the AMU gene embedding.",
        )
    )
    if _present(inputs.embedding_cosine):
        cosine = inputs.embedding_cosine.pivot(
            index="gene", columns="other", values="cosine_similarity"
        )
        section.add(
            _safe_figure(
                "amu_embedding_similarity",
                lambda: embeddings.plot_similarity_heatmap(
                    cosine, inputs.embedding_map[["gene", "leaf_order"]]
                ),
                "Cosine similarity of gene vectors in clustering order.",
            )
        )
    drift = _embedding_drift_text(inputs.embedding_summary)
    if drift:
        section.add(Text(drift))
    section.add(
        table_block(
            inputs.embedding_summary,
            "Embedding neighbours vs co-expression and signature co-membership (trained and initial embedding)",
        )
    )
    if _present(inputs.embedding_pairs):
        pairs = inputs.embedding_pairs[inputs.embedding_pairs["rank"] == 1].sort_values(
            "cosine_similarity", ascending=False
        )
        section.add(Table(pairs, "Nearest-neighbour gene pairs (most similar first)", max_rows=25))
    return section


def _section_enrichment(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import enrichment

    section = Section("Enrichment of top genes in ICB signatures")
    if not _present(inputs.enrichment):
        return section.add(NotRun("Enrichment", "no gene ranking was available"))
    top_k = int(inputs.enrichment["top_k"].iloc[0])
    section.add(
        Text(
            f"Hypergeometric over-representation (gseapy `enrich`, offline) of each model's top-{top_k} genes in the 39 shipped "
            "signature gene sets. **Background = the model's input gene panel** (for a union of models: the union of their "
            "panels), because only panel genes can be top genes; BH q-values over every set with at least one background gene."
        )
    )
    for (setting, query), rows in inputs.enrichment.groupby(["setting", "query"], sort=True):
        best = rows[rows["tested"].astype(bool)].sort_values("p_value").head(8)
        section.add(
            Table(
                best[
                    [
                        "gene_set",
                        "overlap",
                        "set_size",
                        "query_size",
                        "background_size",
                        "odds_ratio",
                        "p_value",
                        "q_value",
                        "genes",
                    ]
                ],
                f"{setting} / {query}: most enriched sets",
                max_rows=8,
            )
        )
    for setting, rows in inputs.enrichment.groupby("setting", sort=True):
        query = "union" if (rows["query"] == "union").any() else sorted(rows["query"].unique())[0]
        chosen = rows[rows["query"] == query]
        section.add(
            _safe_figure(
                f"enrichment_{setting}_{query}",
                lambda c=chosen, p=setting, q=query: enrichment.plot_enrichment(
                    c, f"{p} / {q}: top-{top_k} genes"
                ),
                f"Enrichment of the {query} top-{top_k} genes ({setting} setting).",
            )
        )
    return section


def _section_survival(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import survival

    section = Section("Survival")
    section.add(
        Text(
            "Cox proportional hazards per top gene, **stratified by cohort** (each cohort its own baseline hazard), gene z-scored "
            "within cohort (HR per SD), OS and PFS separately (PFS is recorded for four cohorts), BH over genes per endpoint. "
            "Kaplan-Meier curves compare predicted responders and non-responders of each model (the `loco` protocol when "
            "available: every patient scored once by a model that never saw its cohort); log-rank p pooled over cohorts and a "
            "cohort-stratified Cox HR. **Caveat:** the genes tested are the models' top SHAP genes, chosen by their link to "
            "response on these same patients, and response correlates with survival; so their q-values are optimistic. The "
            "random-gene null below fits as many random common-panel genes the same way: only if the selected genes beat it "
            "do they carry more survival signal than arbitrary genes."
        )
    )
    if _present(inputs.cox_null):
        for row in inputs.cox_null.itertuples():
            if pd.isna(row.empirical_p):
                section.add(
                    Text(
                        f"**{row.endpoint.upper()}, selected vs random genes**: not estimable (no fitted selected or random gene)."
                    )
                )
                continue
            verdict = (
                "more than random genes" if row.empirical_p < 0.05 else "no more than random genes"
            )
            section.add(
                Text(
                    f"**{row.endpoint.upper()}, selected vs random genes**: {row.n_selected_significant} of {row.n_selected} selected genes "
                    f"at p < {row.alpha:g} ({row.share_selected:.0%}) vs {row.share_random:.0%} of {row.n_random} random genes; "
                    f"random sets of {row.n_selected}: mean {row.null_mean:.1f}, 95th percentile {row.null_q95:.0f}; empirical p = "
                    f"{row.empirical_p:.3f} ({row.n_sets} sets): {verdict}."
                )
            )
    if _present(inputs.cox):
        fitted = inputs.cox[inputs.cox["hr"].notna()]
        for endpoint, rows in fitted.groupby("endpoint", sort=True):
            n_sig = int((rows["q_value"] < 0.05).sum())
            section.add(
                Text(f"**{endpoint.upper()}**: {n_sig} of {len(rows)} genes with BH q < 0.05.")
            )
        section.add(
            Table(
                fitted.sort_values("p_value")[
                    [
                        "endpoint",
                        "gene",
                        "models",
                        "n",
                        "n_events",
                        "n_cohorts",
                        "hr",
                        "ci_low",
                        "ci_high",
                        "p_value",
                        "q_value",
                    ]
                ],
                "Cox PH per gene (smallest p first)",
                max_rows=30,
            )
        )
        untested = inputs.cox[inputs.cox["hr"].isna()]
        if len(untested):
            section.add(
                Table(
                    untested[["endpoint", "gene", "models", "note"]].drop_duplicates(),
                    "Genes not tested (and why)",
                    max_rows=40,
                )
            )
        section.add(
            _safe_figure(
                "cox_forest",
                lambda: survival.plot_forest(inputs.cox),
                "Hazard ratios with 95% CI (log scale).",
            )
        )
    else:
        section.add(NotRun("Cox per gene", "no gene ranking was available"))
    if _present(inputs.km):
        section.add(Table(inputs.km, "Predicted responders vs non-responders", max_rows=40))
        for name, figure in sorted(inputs.km_figures.items()):
            section.add(Image(name, figure, name.replace("_", " ")))
    else:
        section.add(NotRun("Kaplan-Meier by prediction", "no predictions were available"))
    return section


_METHODS = """
**Leakage.** Every fitted quantity (scalers, SMOTE, bins, thresholds, hyper-parameters, model weights) is fitted on a
fold's training rows; SHAP and importances are computed on that fold's test rows; the SHAP background comes from the
training rows. Cohort-level standardisation and ComBat are label-free but transductive (they use all of a cohort's
samples) and are named as such wherever used.

**Noise.** Cohorts are small (Riaz: 4 responders / 10 non-responders); single-cohort AUROCs have wide intervals and gene
rankings from a few dozen test rows are unstable. Treat the gene lists as hypotheses.
"""


def build_study_report(
    inputs: StudyInputs, title: str, top_k: int = 10, dpi: int = 110
) -> tuple[str, dict[str, bytes]]:
    """The study report (HTML) and every figure in it as PNG bytes, by figure name."""
    sections = [
        _section_cohorts(inputs),
        _section_performance(inputs),
        _section_ic2bert_training(inputs),
        _section_amu_training(inputs),
        _section_shap(inputs, top_k),
        _section_ic2bert_importance(inputs),
        _section_embeddings(inputs),
        _section_enrichment(inputs),
        _section_survival(inputs),
        Section("Methods and caveats").add(Text(_METHODS)),
    ]
    missing = "\n".join(
        f"- **{name}**: not run ({reason})" for name, reason in sorted(inputs.not_run.items())
    )
    intro = (
        "Which genes drive immune checkpoint blockade response predictions of AMU, IC2Bert and the classical baselines, "
        "and do they matter for survival? Generated by `kedro run --pipelines interpretation`."
        + (
            f"\n\nInputs not available in this run:\n\n{missing}"
            if missing
            else "\n\nAll inputs were available."
        )
    )
    sections = rasterise(sections, dpi)
    html_text = render_report(title, sections, intro=intro, dpi=dpi)
    assert_report_images(html_text)
    return html_text, report_figures(sections)


def plot_mlm_accuracy(history: pd.DataFrame) -> Figure:
    """Masked-token validation accuracy by epoch: one line per n_bins (averaged over held-out
    cohorts) when the history holds several bin counts, else one line per held-out cohort."""
    needed = {"epoch", "val_accuracy"}
    if not needed <= set(history.columns):
        raise ValueError(
            f"pretraining history lacks columns {sorted(needed - set(history.columns))}"
        )
    by_bins = "n_bins" in history.columns and history["n_bins"].nunique() > 1
    group = "n_bins" if by_bins else ("held_out" if "held_out" in history.columns else None)
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    groups = history.groupby(group, sort=True) if group else [("all", history)]
    for key, rows in groups:
        curve = rows.groupby("epoch")["val_accuracy"].mean()
        label = f"{key} bins" if by_bins else str(key).rsplit("_", 1)[-1]
        ax.plot(curve.index, curve.to_numpy(), marker="o", markersize=2, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked-token accuracy (validation)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    bins = sorted(history["n_bins"].unique()) if "n_bins" in history.columns else []
    ax.set_title(
        "IC2Bert pretraining: MLM accuracy "
        + ("vs n_bins" if by_bins else f"per held-out cohort{f' ({bins[0]} bins)' if bins else ''}")
    )
    return figure


def plot_sample_size(table: pd.DataFrame) -> Figure:
    """Test AUROC vs number of labelled training samples, one line per held-out cohort."""
    needed = {"cohort", "n_train", "auroc"}
    if not needed <= set(table.columns):
        raise ValueError(f"sample-size table lacks columns {sorted(needed - set(table.columns))}")
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    for cohort, rows in table.groupby("cohort", sort=True):
        stats = rows.groupby("n_train")["auroc"].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            stats["n_train"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            capsize=2,
            marker="o",
            markersize=3,
            label=str(cohort).rsplit("_", 1)[-1],
        )
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("labelled training samples of the held-out cohort")
    ax.set_ylabel("test AUROC")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title("Sample-size curves")
    return figure
