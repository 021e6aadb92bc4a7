"""Lay a referral report out on one A4 page (reportlab), from texts already in words.

:class:`ReportPage` holds every text of the page in the report's language (see
:mod:`skinstation.services.report`); :func:`render_pdf` draws it with the font chosen by
:mod:`skinstation.services.report_fonts` (embedded) and returns the PDF's bytes. The body map
is two simple silhouettes (front, back) drawn with reportlab graphics, a red dot on the
region of the capture's body-site code.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PilImage
from reportlab.graphics.shapes import Circle, Drawing, Ellipse, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Spacer, Table
from reportlab.platypus import TableStyle as Style

from skinstation.core.i18n import TranslatableError
from skinstation.services.report_fonts import ReportFont

STYLES: dict[str, tuple[str, str]] = {
    # the station's decision colours (foreground, background), as on screen
    "skin_cancer": ("#a4161a", "#fde8e8"),
    "indeterminate": ("#8a5300", "#fff4dc"),
    "other_disease": ("#1d4e89", "#e6eefa"),
    "benign": ("#1e6b3a", "#e5f4ea"),
    "not_assessable": ("#4a4f55", "#eceef0"),
}
NEUTRAL = ("#4a4f55", "#eceef0")
REFERRAL_RED = "#a4161a"

FRONT, BACK = "front", "back"
SITE_SPOTS: dict[str, tuple[tuple[str, float, float], ...]] = {
    # body-site code → (view, x offset from the body's midline, height) on a 150-pt figure
    "scalp": ((BACK, 0.0, 131.0),),
    "face": ((FRONT, 0.0, 124.0),),
    "ear": ((FRONT, -9.5, 124.0),),
    "neck": ((FRONT, 0.0, 111.0),),
    "chest": ((FRONT, 0.0, 96.0),),
    "abdomen": ((FRONT, 0.0, 76.0),),
    "back": ((BACK, 0.0, 90.0),),
    "trunk": ((FRONT, 0.0, 86.0), (BACK, 0.0, 86.0)),
    "genital": ((FRONT, 0.0, 62.0),),
    "upper_extremity": ((FRONT, -19.0, 88.0),),
    "hand": ((FRONT, -19.5, 59.0),),
    "lower_extremity": ((FRONT, -7.5, 38.0),),
    "foot": ((FRONT, -8.0, 14.0),),
    "acral": ((FRONT, -19.5, 59.0), (FRONT, -8.0, 14.0)),
}
"""Where each station body site is marked (``unknown`` and other codes: not marked)."""

MAP_WIDTH = 130.0
"""Width of the body map (two figures)."""

MAX_PIXELS = 900
"""Images are scaled to at most this many pixels on their long side before embedding."""


@dataclass(frozen=True)
class DecisionText:
    """The decision as the station words it (see ``result_text.word_prediction``)."""

    style: str
    title: str
    referral: str = ""
    detail: str = ""
    guidance: str = ""


@dataclass(frozen=True)
class ReportPage:
    """Everything on a report page, in words of the report's language.

    Attributes:
        language: ``en`` or ``ko`` (Korean lines wrap between any two letters).
        title: The page's heading.
        facts: (label, value) rows: station, dates, patient, site, model...
        image: The capture (RGB uint8), or None.
        image_caption: Its caption.
        heatmap: The Grad-CAM overlay (RGB uint8), or None.
        heatmap_caption: Its caption.
        overview: A lesion's overview photo with the lesion marked (RGB uint8), or None.
        overview_caption: Its caption.
        site_code: The body-site code marked on the body map.
        site_view: ``front`` or ``back`` when known (a lesion's placement), else "".
        site_side: The patient's ``left``/``right`` when known, else "".
        body_map_caption: The map's caption.
        views: The words for the front and the back view.
        decision_heading: Heading above the decision.
        decision: The decision's words.
        referral_line: Referral flag, skin-cancer probability and threshold ("" if none).
        groups_heading, groups: Triage-group probabilities ((name, percentage) rows).
        classes_heading, classes: Class probabilities, most probable first.
        labels_heading, label_lines: The operator's and the reviewer's labels.
        notice: The not-a-diagnosis notice.
        footer: Small print at the bottom of the page.
        timeline_heading: Heading of the lesion's captures.
        timeline: The lesion's captures: (thumbnail, caption), newest first.
    """

    language: str
    title: str
    facts: Sequence[tuple[str, str]]
    image: np.ndarray | None
    image_caption: str
    site_code: str
    body_map_caption: str
    views: tuple[str, str]
    decision_heading: str
    decision: DecisionText
    notice: str
    footer: str
    heatmap: np.ndarray | None = None
    heatmap_caption: str = ""
    overview: np.ndarray | None = None
    overview_caption: str = ""
    referral_line: str = ""
    groups_heading: str = ""
    groups: Sequence[tuple[str, str]] = ()
    classes_heading: str = ""
    classes: Sequence[tuple[str, str]] = ()
    labels_heading: str = ""
    label_lines: Sequence[str] = ()
    site_view: str = ""
    site_side: str = ""
    timeline_heading: str = ""
    timeline: Sequence[tuple[np.ndarray, str]] = field(default_factory=tuple)


def _styles(font: ReportFont, language: str) -> dict[str, ParagraphStyle]:
    wrap = "CJK" if language == "ko" else None
    base = ParagraphStyle("body", fontName=font.name, fontSize=8.5, leading=11, wordWrap=wrap)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7, leading=9,
                                textColor=colors.HexColor("#4a4f55")),
        "title": ParagraphStyle("title", parent=base, fontName=font.bold, fontSize=15,
                                leading=19, spaceAfter=4),
        "heading": ParagraphStyle("heading", parent=base, fontName=font.bold, fontSize=9.5,
                                  leading=12, spaceBefore=4, spaceAfter=2),
        "label": ParagraphStyle("label", parent=base, fontName=font.bold),
        "notice": ParagraphStyle("notice", parent=base, fontName=font.bold, fontSize=9,
                                 leading=12),
    }


def _p(words: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(words).replace("\n", "<br/>"), style)


def _image(pixels: np.ndarray, width: float, height: float) -> Image:
    picture = PilImage.fromarray(np.ascontiguousarray(pixels[..., :3]).astype(np.uint8))
    picture.thumbnail((MAX_PIXELS, MAX_PIXELS))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    scale = min(width / picture.width, height / picture.height)
    return Image(buffer, width=picture.width * scale, height=picture.height * scale)


def site_spots(site_code: str, view: str = "", side: str = ""
               ) -> list[tuple[str, float, float]]:
    """Where the body map marks a site: (view, x offset from the midline, height).

    ``view`` keeps only the spots on that view (when it has any); ``side`` puts a spot off the
    midline on the patient's left or right (the patient's left is on the right of the front
    view and on the left of the back view).
    """
    spots = list(SITE_SPOTS.get(site_code, ()))
    if view and any(spot[0] == view for spot in spots):
        spots = [spot for spot in spots if spot[0] == view]
    if side in ("left", "right"):
        spots = [(v, abs(dx) if (v == FRONT) == (side == "left") else -abs(dx), y)
                 for v, dx, y in spots]
    return spots


def body_map(site_code: str, views: tuple[str, str], font: ReportFont,
             view: str = "", side: str = "") -> Drawing:
    """Front and back silhouettes with a red dot on ``site_code``'s region."""
    height = 150.0
    drawing = Drawing(MAP_WIDTH, height + 12)
    outline, fill = colors.HexColor("#5b6b7f"), colors.HexColor("#eef1f5")
    centres = {FRONT: 32.0, BACK: 98.0}
    for figure, cx in centres.items():
        parts = [Circle(cx, 124 + 12, 9), Rect(cx - 3.5, 107 + 12, 7, 6),
                 Rect(cx - 14, 62 + 12, 28, 46, rx=4, ry=4),
                 Rect(cx - 22.5, 63 + 12, 7, 43, rx=3, ry=3),
                 Rect(cx + 15.5, 63 + 12, 7, 43, rx=3, ry=3),
                 Circle(cx - 19.5, 59 + 12, 4), Circle(cx + 19.5, 59 + 12, 4),
                 Rect(cx - 13, 18 + 12, 11.5, 45, rx=3, ry=3),
                 Rect(cx + 1.5, 18 + 12, 11.5, 45, rx=3, ry=3),
                 Ellipse(cx - 8, 14 + 12, 6, 3.5), Ellipse(cx + 8, 14 + 12, 6, 3.5)]
        for part in parts:
            part.fillColor, part.strokeColor, part.strokeWidth = fill, outline, 0.8
            drawing.add(part)
        if figure == FRONT:  # a nose, so front and back differ at a glance
            drawing.add(Rect(cx - 0.6, 122 + 12, 1.2, 4, fillColor=outline, strokeWidth=0))
        else:  # a spine line
            drawing.add(Rect(cx - 0.4, 66 + 12, 0.8, 40, fillColor=outline, strokeWidth=0))
        drawing.add(String(cx, 2, views[0] if figure == FRONT else views[1],
                           fontName=font.name, fontSize=7, textAnchor="middle"))
    red = colors.HexColor(REFERRAL_RED)
    for spot_view, dx, y in site_spots(site_code, view, side):
        cx = centres[spot_view] + dx
        drawing.add(Circle(cx, y + 12, 5.5, fillColor=None, strokeColor=red, strokeWidth=1.2))
        drawing.add(Circle(cx, y + 12, 2.6, fillColor=red, strokeColor=red, strokeWidth=0))
    return drawing


def _boxed(rows: list[list[Flowable]], foreground: str, background: str,
           width: float) -> Table:
    table = Table(rows, colWidths=[width])
    table.setStyle(Style([
        ("BOX", (0, 0), (-1, -1), 1.6, colors.HexColor(foreground)),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(background)),
        ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def _rows(pairs: Sequence[tuple[str, str]], style: ParagraphStyle,
          widths: Sequence[float]) -> Table:
    table = Table([[_p(name, style), _p(value, style)] for name, value in pairs],
                  colWidths=list(widths))
    table.setStyle(Style([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c9d0d8")),
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]))
    return table


def _plain(table: Table) -> Table:
    table.hAlign = "LEFT"
    table.setStyle(Style([("VALIGN", (0, 0), (-1, -1), "TOP"),
                          ("LEFTPADDING", (0, 0), (-1, -1), 0),
                          ("RIGHTPADDING", (0, 0), (-1, -1), 4)]))
    return table


def _story(page: ReportPage, font: ReportFont, width: float, compact: bool) -> list[Flowable]:
    styles = _styles(font, page.language)
    body, label = styles["body"], styles["label"]
    story: list[Flowable] = [_p(page.title, styles["title"])]
    facts = [[_p(name, label), _p(value, body)] for name, value in page.facts]
    half = (len(facts) + 1) // 2
    left, right = facts[:half], facts[half:] + [[Spacer(1, 1), Spacer(1, 1)]] * (
        half - len(facts[half:]))
    story.append(_plain(Table([a + b for a, b in zip(left, right, strict=True)],
                              colWidths=[width * 0.17, width * 0.33] * 2)))
    story.append(Spacer(1, 4))
    room = width - MAP_WIDTH - 8  # beside the body map
    extras = [(pixels, caption) for pixels, caption in ((page.heatmap, page.heatmap_caption),
                                                         (page.overview, page.overview_caption))
              if pixels is not None]
    side = min(room / (4 / 3 + len(extras)) - 8 if extras else room * 3 / 4, 240.0)
    side *= 0.75 if compact else 1.0
    pictures: list[Flowable] = []
    captions: list[Flowable] = []
    widths: list[float] = []
    if page.image is not None:
        pictures.append(_image(page.image, side * 4 / 3, side))
        captions.append(_p(page.image_caption, styles["small"]))
        widths.append(side * 4 / 3 + 4)
    for pixels, caption in extras:  # the heatmap, a lesion's overview photo
        pictures.append(_image(pixels, side, side))
        captions.append(_p(caption, styles["small"]))
        widths.append(side + 4)
    pictures.append(body_map(page.site_code, page.views, font, page.site_view,
                             page.site_side))
    captions.append(_p(page.body_map_caption, styles["small"]))
    widths.append(width - sum(widths))
    story.append(_plain(Table([pictures, captions], colWidths=widths)))
    if page.timeline:
        story.append(_p(page.timeline_heading, styles["heading"]))
        thumbs = [_image(pixels, 64, 48) for pixels, _ in page.timeline]
        notes = [_p(caption, styles["small"]) for _, caption in page.timeline]
        story.append(_plain(Table([thumbs, notes], colWidths=[width / 7] * len(thumbs))))
    story.append(_p(page.decision_heading, styles["heading"]))
    decision = page.decision
    foreground, background = STYLES.get(decision.style, NEUTRAL)
    banner: list[list[Flowable]] = [[_p(decision.title, ParagraphStyle(
        "decision", parent=body, fontName=font.bold, fontSize=14, leading=18,
        textColor=colors.HexColor(foreground)))]]
    if decision.referral:
        banner.append([_p(decision.referral, ParagraphStyle(
            "referral", parent=label, textColor=colors.HexColor(REFERRAL_RED)))])
    if decision.detail:
        banner.append([_p(decision.detail, ParagraphStyle(
            "detail", parent=label, textColor=colors.HexColor(foreground)))])
    if decision.guidance:
        banner.append([_p(decision.guidance, body)])
    story.append(_boxed(banner, foreground, background, width))
    if page.referral_line:
        story += [Spacer(1, 2), _p(page.referral_line, body)]
    if page.groups or page.classes:
        column = (width - 12) / 2
        blocks = [[_p(page.groups_heading, styles["heading"]),
                   _p(page.classes_heading, styles["heading"])],
                  [_rows(page.groups, body, [column * 0.75, column * 0.25]),
                   _rows(page.classes, body, [column * 0.8, column * 0.2])]]
        story.append(_plain(Table(blocks, colWidths=[column + 12, column])))
    if page.label_lines:
        story.append(_p(page.labels_heading, styles["heading"]))
        story += [_p(line, body) for line in page.label_lines]
    story.append(Spacer(1, 6))
    story.append(_boxed([[_p(page.notice, styles["notice"])]], "#4a4f55", "#fff8e1", width))
    return story


def render_pdf(page: ReportPage, font: ReportFont, *, title: str = "") -> bytes:
    """The one-page PDF of ``page`` written with ``font`` (embedded).

    Tries the full layout first, then a compact one (smaller pictures).

    Raises:
        TranslatableError: ``error.report_too_long`` if even the compact layout needs a
            second page.
    """
    margin = 14 * mm
    for compact in (False, True):
        buffer = io.BytesIO()
        document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=margin,
                                     rightMargin=margin, topMargin=margin,
                                     bottomMargin=margin + 4, title=title or page.title,
                                     author="SkinStation", creator="SkinStation",
                                     subject=page.title)

        def footer(canvas: object, doc: object) -> None:
            canvas.saveState()  # type: ignore[attr-defined]
            canvas.setFont(font.name, 6.5)  # type: ignore[attr-defined]
            canvas.setFillColor(colors.HexColor("#4a4f55"))  # type: ignore[attr-defined]
            canvas.drawString(margin, margin - 2, page.footer)  # type: ignore[attr-defined]
            canvas.restoreState()  # type: ignore[attr-defined]

        document.build(_story(page, font, A4[0] - 2 * margin, compact),
                       onFirstPage=footer, onLaterPages=footer)
        if document.page == 1:
            return buffer.getvalue()
    raise TranslatableError("error.report_too_long")
