"""A simulated dermatoscope that replays real images or a video through ``cv2.VideoCapture``.

Used for demos and tests, and the default when no camera is connected. Frames take the same
OpenCV path as a physical camera's:

* **video file** (``.avi``, ``.mp4``, ...): ``cv2.VideoCapture(path)`` on the FFMPEG backend;
* **folder of images** (or an explicit list): OpenCV's image-sequence backend (``CAP_IMAGES``)
  reads numbered files. A folder that already is a consecutive sequence (HAM10000's
  ``ISIC_0024306.jpg`` ... ``ISIC_0034320.jpg``) is opened as it is. Otherwise the simulator
  builds a *playlist*: a private temporary folder of numbered **symbolic links**
  (``frame_%06d.img``) to the sorted images (nothing is copied and nothing is written next to
  the data or into the repository), removed on close. The image decoder sniffs the content,
  so PNG and JPEG can be mixed. (Decoding with ``cv2.imread`` in a loop would be simpler but
  would not exercise the ``VideoCapture`` path a camera uses.)

Playback loops (rewinding at the end) at a configurable frame rate, and frames can be resized
(cover and centre-crop) to the resolution a station camera would deliver.

With ``hold=True`` (what the station uses, see :mod:`.factory`) the simulator behaves like a
dermatoscope held on one lesion: every frame re-reads the same image through the capture and
shows it with slight, smooth, seeded hand motion and focus drift (:mod:`.drift`); it moves to
another lesion only on :meth:`SimulatedDermatoscope.next_lesion` (or
:meth:`~SimulatedDermatoscope.select_lesion`). A video file is always played as recorded.

:class:`~skinstation.camera.cable.SimulatedCable` is the fault injector at the physical
boundary: it can "unplug" the device after N frames, after which the capture behaves exactly
like OpenCV with a vanished V4L2 device (``read()`` returns ``(False, None)``, ``grab()``
False) and new opens fail until it is plugged in again; held or not.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from skinstation.camera.cable import SimulatedCable
from skinstation.camera.drift import HandDrift
from skinstation.camera.frames import (
    CameraError,
    CameraUnavailableError,
    FrameSource,
    SourceKind,
    SourceProperties,
    stopped_delivering,
)
from skinstation.camera.opencv_camera import VideoCaptureLike, bgr_to_rgb

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


_NUMBERED_NAME = re.compile(r"^(\D*)(\d+)(\.[A-Za-z0-9]+)$")


def is_numbered_sequence(images: Sequence[Path]) -> bool:
    """True if ``images`` are one folder's ``<prefix><n><suffix>`` files with consecutive n.

    Such a sequence (HAM10000's ``ISIC_0024306.jpg`` ... is one) can be opened by OpenCV's
    image-sequence backend directly, without a playlist.
    """
    if not images or len({image.parent for image in images}) != 1:
        return False
    groups = []
    for image in images:
        match = _NUMBERED_NAME.match(image.name)
        if match is None:
            return False
        groups.append(match.groups())
    prefix, digits, suffix = groups[0]
    start = int(digits)
    return all(
        group == (prefix, f"{start + offset:0{len(digits)}d}", suffix)
        for offset, group in enumerate(groups)
    )


def fit_to_size(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width``×``height`` keeping the aspect ratio, then centre-crop.

    Enlarging uses bicubic interpolation: bilinear softens 200-pixel images enough to fail
    the focus check on 3% more HAM10000 images than at their own size; bicubic does not.
    """
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    out = np.ascontiguousarray(resized[top : top + height, left : left + width])
    out.setflags(write=False)
    return out


class SimulatedDermatoscope(FrameSource):
    """Replays real images or a video as if it were a dermatoscope.

    Args:
        media: A folder of images, a video file, or an explicit sequence of image paths.
        fps: Frames per second to pace playback at; 0 delivers frames as fast as possible.
        loop: Rewind at the end (otherwise the end behaves like an unplugged device).
        size: ``(width, height)`` to deliver, e.g. the station camera's 1280×960; None keeps
            each image's own size.
        cable: Optional fault injector (see :class:`SimulatedCable`).
        selection_reason: Why this source was chosen (see :class:`FrameSource`).
        hold: Hold one lesion (image media only) with hand motion and focus drift instead of
            showing the next image every frame.
        seed: Seed of the drift while holding; the same seed gives the same frames.

    Raises:
        CameraUnavailableError: On :meth:`open`, if the media is missing or holds no image.
    """

    kind: SourceKind = "simulator"

    def __init__(
        self,
        media: str | Path | Sequence[str | Path],
        fps: float = 15.0,
        loop: bool = True,
        size: tuple[int, int] | None = None,
        cable: SimulatedCable | None = None,
        selection_reason: str = "",
        hold: bool = False,
        seed: int = 0,
    ) -> None:
        if isinstance(media, str | Path):
            self.media: Path | tuple[Path, ...] = Path(media)
            device_id = f"simulator:{Path(media)}"
        else:
            self.media = tuple(Path(p) for p in media)
            device_id = f"simulator:{len(self.media)} images"
        super().__init__(device_id, selection_reason)
        if fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.fps = float(fps)
        self.loop = loop
        self.size = size
        self.cable = cable
        self._images: list[Path] = []
        self._playlist_dir: Path | None = None
        self._capture: VideoCaptureLike | None = None
        self._frame_count = 0
        self._next_due = 0.0
        self.hold = hold
        self.seed = seed
        self._lesion = 0
        self._held_frames = 0
        self._drift = HandDrift(seed, 0)

    @property
    def images(self) -> list[Path]:
        """The images being replayed, in order (empty for a video)."""
        return list(self._images)

    @property
    def holds_lesion(self) -> bool:
        """Whether the simulator holds one lesion (``hold`` and image media, not a video)."""
        media = self.media
        return self.hold and not (isinstance(media, Path) and media.is_file())

    @property
    def lesion_index(self) -> int:
        """Index in :attr:`images` of the lesion held (0 when not holding)."""
        return self._lesion if self.holds_lesion else 0

    @property
    def lesion(self) -> str:
        """File name of the lesion held; ``""`` when not holding or not open yet."""
        if not self.holds_lesion or self._lesion >= len(self._images):
            return ""
        return self._images[self._lesion].name

    def next_lesion(self) -> str:
        """Move the scope to the next lesion (wrapping at the end); returns its file name.

        Raises:
            CameraError: If the simulator does not hold lesions (``hold`` off, or a video).
        """
        with self._lock:
            return self.select_lesion(self._lesion + 1)

    def select_lesion(self, index: int) -> str:
        """Hold lesion ``index`` (modulo the number of images); returns its file name.

        Before :meth:`open` the index is kept and applied once the images are known.

        Raises:
            CameraError: If the simulator does not hold lesions (``hold`` off, or a video).
        """
        if not self.holds_lesion:
            raise CameraError(f"{self.device_id} does not hold a lesion: it replays its media")
        with self._lock:
            self._lesion = index % len(self._images) if self._images else max(0, index)
            self._held_frames = 0
            self._drift = HandDrift(self.seed, self._lesion)
            return self.lesion

    def _open(self) -> SourceProperties:
        capture = self._make_capture()
        if self.cable is not None:
            capture = self.cable.wrap(capture)
        if not capture.isOpened():
            capture.release()
            self._remove_playlist()
            raise CameraUnavailableError(f"cannot open {self.device_id}: device not connected")
        self._capture = capture
        self._frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._next_due = time.monotonic()
        if self.holds_lesion:
            self.select_lesion(self._lesion)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.size is not None:
            width, height = self.size
        return SourceProperties(
            width=width,
            height=height,
            fps=self.fps,
            requested_width=self.size[0] if self.size else None,
            requested_height=self.size[1] if self.size else None,
            backend=capture.getBackendName(),
        )

    def _make_capture(self) -> VideoCaptureLike:
        """Open the OpenCV capture for the media (building the image playlist if needed)."""
        media = self.media
        if isinstance(media, Path) and media.is_file():
            self._images = []
            return cv2.VideoCapture(str(media))
        if isinstance(media, Path):
            if not media.is_dir():
                raise CameraUnavailableError(
                    f"cannot open {self.device_id}: no such folder or file"
                )
            images = list_images(media)
        else:
            images = [p for p in media if p.is_file()]
        if not images:
            raise CameraUnavailableError(f"cannot open {self.device_id}: no images found")
        self._images = images
        if is_numbered_sequence(images):
            # OpenCV derives the pattern (e.g. ISIC_%07d.jpg) and start number from the name.
            capture = cv2.VideoCapture(str(images[0]), cv2.CAP_IMAGES)
            if int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(images):
                return capture
            capture.release()
        return self._playlist_capture(images)

    def _playlist_capture(self, images: list[Path]) -> VideoCaptureLike:
        """Open a temporary folder of numbered links to ``images`` as an image sequence."""
        self._playlist_dir = Path(tempfile.mkdtemp(prefix="skinstation-sim-"))
        try:
            for number, image in enumerate(images):
                os.symlink(image.resolve(), self._playlist_dir / f"frame_{number:06d}.img")
        except OSError as exc:
            self._remove_playlist()
            raise CameraUnavailableError(
                f"cannot open {self.device_id}: cannot build the playlist of links ({exc})"
            ) from exc
        return cv2.VideoCapture(str(self._playlist_dir / "frame_%06d.img"), cv2.CAP_IMAGES)

    def _read_rgb(self) -> tuple[np.ndarray, str]:
        capture = self._capture
        if capture is None:  # pragma: no cover - guarded by FrameSource.read
            raise stopped_delivering(self.device_id)
        self._pace()
        if self.holds_lesion:
            return self._read_held(capture)
        position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
        if self.loop and self._frame_count and position >= self._frame_count:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            position = 0
        ok, image = capture.read()
        if (not ok or image is None) and self.loop and position > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a video whose frame count was a guess
            position = 0
            ok, image = capture.read()
        if not ok or image is None:
            raise stopped_delivering(self.device_id)
        rgb = bgr_to_rgb(image, self.device_id)
        if self.size is not None:
            rgb = fit_to_size(rgb, *self.size)
        label = self._images[position].name if position < len(self._images) else ""
        return rgb, label

    def _read_held(self, capture: VideoCaptureLike) -> tuple[np.ndarray, str]:
        """Re-read the held lesion through the capture and show it as the hand holds it."""
        capture.set(cv2.CAP_PROP_POS_FRAMES, self._lesion)
        ok, image = capture.read()
        if not ok or image is None:
            raise stopped_delivering(self.device_id)
        rgb = bgr_to_rgb(image, self.device_id)
        if self.size is not None:
            rgb = fit_to_size(rgb, *self.size)
        moved = self._drift.apply(rgb, self._held_frames)
        self._held_frames += 1
        return moved, self.lesion

    def _pace(self) -> None:
        """Sleep until the next frame is due at the configured frame rate."""
        if self.fps <= 0:
            return
        now = time.monotonic()
        if self._next_due > now:
            time.sleep(self._next_due - now)
        self._next_due = max(now, self._next_due) + 1.0 / self.fps

    def _discard(self, count: int) -> None:
        """Drop ``count`` frames without decoding them (like a camera's buffered frames)."""
        for _ in range(count):
            capture = self._capture
            if capture is None:  # pragma: no cover - guarded by FrameSource.discard
                raise stopped_delivering(self.device_id)
            if self.holds_lesion:
                capture.set(cv2.CAP_PROP_POS_FRAMES, self._lesion)
                if not capture.grab():
                    raise stopped_delivering(self.device_id)
                self._held_frames += 1  # the hand kept moving meanwhile
                continue
            position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
            if self.loop and self._frame_count and position >= self._frame_count:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            if not capture.grab():
                raise stopped_delivering(self.device_id)

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._remove_playlist()

    def _remove_playlist(self) -> None:
        if self._playlist_dir is not None:
            shutil.rmtree(self._playlist_dir, ignore_errors=True)
            self._playlist_dir = None
