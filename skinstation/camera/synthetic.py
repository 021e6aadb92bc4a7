"""Clearly labelled synthetic frames, for when there is neither a camera nor simulator media.

Each frame shows a drawn skin-coloured field with a slowly drifting brown "lesion" and, across
the bottom, a black banner with ``SIMULATED — NOT A PATIENT IMAGE`` in white. Frames carry
``source_kind == "synthetic"`` (see :attr:`Frame.synthetic`) so nothing downstream can take
them for a patient image.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from skinstation.camera.frames import SYNTHETIC_LABEL, FrameSource, SourceKind, SourceProperties

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_EM_DASH = "—"


def label_banner_height(height: int) -> int:
    """Height in pixels of the label banner on a frame ``height`` pixels tall."""
    return max(14, height // 12)


def draw_label(image: np.ndarray, text: str = SYNTHETIC_LABEL) -> None:
    """Draw ``text`` in white on a black banner across the bottom of ``image`` (in place).

    OpenCV's Hershey fonts are ASCII-only, so an em dash is drawn as a line one em wide.
    """
    height, width = image.shape[:2]
    banner = label_banner_height(height)
    image[height - banner :, :] = 0
    parts = [part.strip() for part in text.split(_EM_DASH)]
    dash_width_units = 48  # space, one em (24 units of the Hershey simplex font), space
    units = sum(cv2.getTextSize(p, _FONT, 1.0, 1)[0][0] for p in parts)
    units += dash_width_units * (len(parts) - 1)
    scale = min((width * 0.92) / max(units, 1), (banner * 0.6) / 22)
    thickness = max(1, round(scale * 1.6))
    x = (width - units * scale) / 2
    baseline_y = height - (banner - 22 * scale) / 2
    for index, part in enumerate(parts):
        if index:
            y = round(baseline_y - 9 * scale)
            margin = 12 * scale
            cv2.line(
                image,
                (round(x + margin), y),
                (round(x + dash_width_units * scale - margin), y),
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )
            x += dash_width_units * scale
        cv2.putText(
            image,
            part,
            (round(x), round(baseline_y)),
            _FONT,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
        x += cv2.getTextSize(part, _FONT, 1.0, 1)[0][0] * scale


class SyntheticFrameSource(FrameSource):
    """Drawn, labelled frames at a fixed resolution and frame rate.

    Args:
        width: Frame width.
        height: Frame height.
        fps: Frames per second to pace at; 0 for as fast as possible.
        selection_reason: Why this source was chosen (see :class:`FrameSource`).
    """

    kind: SourceKind = "synthetic"

    def __init__(
        self, width: int = 1280, height: int = 960, fps: float = 15.0, selection_reason: str = ""
    ) -> None:
        super().__init__(f"synthetic:{width}x{height}", selection_reason)
        if width < 64 or height < 48:
            raise ValueError(f"synthetic frames must be at least 64x48, got {width}x{height}")
        self.width, self.height, self.fps = width, height, float(fps)
        self._background = np.zeros((0, 0, 3), np.uint8)
        self._lesion_rgb = np.zeros((0, 0, 3), np.float32)
        self._lesion_alpha = np.zeros((0, 0, 1), np.float32)
        self._next_due = 0.0
        self._frame_number = 0

    def _open(self) -> SourceProperties:
        rng = np.random.default_rng(0)
        noise = rng.normal(0, 14, (self.height, self.width)).astype(np.float32)
        skin = np.empty((self.height, self.width, 3), np.float32)
        skin[:] = (224, 178, 160)
        skin += cv2.GaussianBlur(noise, (0, 0), 1.2)[..., None]
        background = np.clip(skin, 0, 255).astype(np.uint8)
        draw_label(background)
        self._background = background
        self._lesion_rgb, self._lesion_alpha = self._draw_lesion_sprite()
        self._next_due = time.monotonic()
        self._frame_number = 0
        return SourceProperties(
            width=self.width,
            height=self.height,
            fps=self.fps,
            backend="synthetic",
            notes=("synthetic frames: no camera and no simulator media configured",),
        )

    def _draw_lesion_sprite(self) -> tuple[np.ndarray, np.ndarray]:
        """A brown ellipse with a darker core, as colour and alpha patches."""
        axes = (round(self.width * 0.12), round(self.height * 0.11))
        pad = max(axes) + 4 * max(1, self.width // 300)
        side = 2 * pad + 1
        mask = np.zeros((side, side), np.uint8)
        cv2.ellipse(mask, (pad, pad), axes, 20.0, 0, 360, 255, -1)
        core = np.zeros_like(mask)
        inner = (round(axes[0] * 0.55), round(axes[1] * 0.5))
        cv2.ellipse(core, (pad - axes[0] // 5, pad), inner, 20.0, 0, 360, 255, -1)
        sigma = max(1.0, self.width / 300)
        alpha = cv2.GaussianBlur(mask, (0, 0), sigma).astype(np.float32)[..., None] / 255.0
        core_weight = cv2.GaussianBlur(core, (0, 0), sigma).astype(np.float32)[..., None] / 255.0
        brown, dark = np.array((128, 78, 56), np.float32), np.array((72, 42, 34), np.float32)
        return brown * (1 - core_weight) + dark * core_weight, alpha

    def _read_rgb(self) -> tuple[np.ndarray, str]:
        if self.fps > 0:
            now = time.monotonic()
            if self._next_due > now:
                time.sleep(self._next_due - now)
            self._next_due = max(now, self._next_due) + 1.0 / self.fps
        frame = self._background.copy()
        phase = self._frame_number / 90.0 * 2 * math.pi
        self._frame_number += 1
        side = self._lesion_alpha.shape[0]
        left = round(self.width * (0.5 + 0.04 * math.cos(phase))) - side // 2
        top = round(self.height * (0.46 + 0.03 * math.sin(phase))) - side // 2
        region = frame[top : top + side, left : left + side].astype(np.float32)
        alpha = self._lesion_alpha[: region.shape[0], : region.shape[1]]
        colour = self._lesion_rgb[: region.shape[0], : region.shape[1]]
        blended = region * (1 - alpha) + colour * alpha
        frame[top : top + side, left : left + side] = blended.astype(np.uint8)
        frame.setflags(write=False)
        return frame, "synthetic"

    def _close(self) -> None:
        self._background = np.zeros((0, 0, 3), np.uint8)
