"""Benchmark the camera layer: simulator frame rate and quality-check time per frame.

    .venv/bin/python bench/bench_camera.py --data-dir ../shared/data

Prints measured figures for: the simulated dermatoscope replaying HAM10000 through OpenCV
(unthrottled, native 200x150 and resized to a 1280x960 camera frame), synthetic frames at
1280x960, the quality checks on 1280x960 frames, and a seven-band multispectral stack through
the LED-controller simulator on a pty (settle time 0, so it measures the software only).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from skinstation.camera import (
    LedControllerSimulator,
    SerialIlluminator,
    SimulatedDermatoscope,
    SyntheticFrameSource,
    assess_quality,
    capture_multispectral,
)
from skinstation.camera.frames import FrameSource
from skinstation.settings import CameraSettings, QualitySettings


def frame_rate(source: FrameSource, frames: int) -> float:
    with source:
        source.read()  # warm-up (first decode, buffers)
        started = time.perf_counter()
        for _ in range(frames):
            source.read()
        return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    folder = args.data_dir / "ham10000" / "images"

    started = time.perf_counter()
    with SimulatedDermatoscope(folder, fps=0):
        pass
    print(f"simulator open (10,015 images, CAP_IMAGES): {time.perf_counter() - started:.2f} s")
    native = frame_rate(SimulatedDermatoscope(folder, fps=0), args.frames)
    print(f"simulator, unthrottled, native 200x150:     {native:7.1f} frames/s")
    large = frame_rate(SimulatedDermatoscope(folder, fps=0, size=(1280, 960)), args.frames)
    print(f"simulator, unthrottled, resized 1280x960:   {large:7.1f} frames/s")
    synthetic = frame_rate(SyntheticFrameSource(1280, 960, fps=0), args.frames)
    print(f"synthetic frames 1280x960:                  {synthetic:7.1f} frames/s")
    paced = frame_rate(SimulatedDermatoscope(folder, fps=15, size=(1280, 960)), 30)
    print(f"simulator paced at 15 fps (1280x960):       {paced:7.1f} frames/s")

    settings = QualitySettings()
    timings: list[float] = []
    passed = 0
    with SimulatedDermatoscope(folder, fps=0, size=(1280, 960)) as source:
        for _ in range(min(args.frames, 200)):
            pixels = source.read().pixels
            started = time.perf_counter()
            passed += assess_quality(pixels, settings).passed
            timings.append(time.perf_counter() - started)
    print(
        f"quality check per 1280x960 frame:           {statistics.median(timings) * 1000:7.1f} ms "
        f"median, {max(timings) * 1000:.1f} ms max ({passed}/{len(timings)} frames passed)"
    )

    bands = CameraSettings().bands
    with (
        LedControllerSimulator() as controller,
        SerialIlluminator(controller.port, bands) as light,
        SimulatedDermatoscope(folder, fps=0, size=(1280, 960)) as source,
    ):
        started = time.perf_counter()
        stack = capture_multispectral(source, light, settle_seconds=0, discard_stale=2)
        elapsed = time.perf_counter() - started
    print(f"multispectral stack, {len(stack)} bands, settle 0:   {elapsed * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
