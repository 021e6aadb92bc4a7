"""Stills and multispectral stacks: fresh frames, band order, light off even on error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skinstation.camera import (
    BANDS,
    Band,
    CameraDisconnectedError,
    CameraError,
    IlluminatorError,
    LedControllerSimulator,
    ManualIlluminator,
    SerialIlluminator,
    SimulatedCable,
    SimulatedDermatoscope,
    capture_multispectral,
    capture_still,
)


@pytest.fixture(scope="module")
def nine_images(ham_dir: Path) -> list[Path]:
    """Nine real images, ISIC_0024306 ... ISIC_0024314 (consecutive ids in HAM10000)."""
    return [ham_dir / "images" / f"ISIC_{24306 + offset:07d}.jpg" for offset in range(9)]


@pytest.fixture()
def controller() -> Iterator[LedControllerSimulator]:
    with LedControllerSimulator() as simulator:
        yield simulator


def label(offset: int) -> str:
    return f"ISIC_{24306 + offset:07d}.jpg"


def test_still_discards_stale_frames(nine_images: list[Path]) -> None:
    with SimulatedDermatoscope(nine_images, fps=0) as source:
        assert capture_still(source).label == label(0)
        assert capture_still(source, discard_stale=3).label == label(4)


def test_still_from_a_closed_source_is_an_error(nine_images: list[Path]) -> None:
    with pytest.raises(CameraError, match=r"^simulator:9 images is not open$"):
        capture_still(SimulatedDermatoscope(nine_images))


def test_multispectral_takes_one_fresh_frame_per_band_in_order(
    nine_images: list[Path], controller: LedControllerSimulator
) -> None:
    waits: list[tuple[float, str | None]] = []
    with (
        SimulatedDermatoscope(nine_images, fps=0) as source,
        SerialIlluminator(controller.port, ["white", "uv_365", "nir_850"]) as light,
    ):
        stack = capture_multispectral(
            source, light, ["nir_850", "white", "uv_365"], settle_seconds=0.01,
            discard_stale=2, sleep=lambda seconds: waits.append((seconds, controller.lit)),
        )
        assert controller.lit is None
    assert [item.band for item in stack] == [BANDS["nir_850"], BANDS["white"], BANDS["uv_365"]]
    # Two stale frames dropped after each switch: frames 3, 6 and 9 are kept.
    assert [item.frame.label for item in stack] == [label(2), label(5), label(8)]
    # Each wait happened with its band already lit, before the frame was taken.
    assert waits == [(0.01, "nir_850"), (0.01, "white"), (0.01, "uv_365")]
    assert controller.received[2:] == ["BAND nir_850", "BAND white", "BAND uv_365", "OFF", "OFF"]


def test_multispectral_defaults_to_every_station_band(nine_images: list[Path]) -> None:
    asked: list[Band | None] = []
    light = ManualIlluminator(["white", "cross_polarised"], on_change=asked.append)
    with SimulatedDermatoscope(nine_images, fps=0) as source:
        stack = capture_multispectral(source, light, discard_stale=0, sleep=lambda _: None)
    assert [(item.band.name, item.frame.label) for item in stack] == [
        ("white", label(0)), ("cross_polarised", label(1)),
    ]
    assert asked == [BANDS["white"], BANDS["cross_polarised"], None]


def test_camera_unplugged_mid_stack_raises_and_switches_the_light_off(
    nine_images: list[Path], controller: LedControllerSimulator
) -> None:
    cable = SimulatedCable(unplug_after_frames=4)  # the second band's frames never come
    with SerialIlluminator(controller.port, ["white", "uv_365"]) as light:
        source = SimulatedDermatoscope(nine_images, fps=0, cable=cable)
        source.open()
        with pytest.raises(CameraDisconnectedError, match=r"^simulator:9 images stopped"):
            capture_multispectral(source, light, settle_seconds=0, discard_stale=2)
        assert controller.lit is None
        assert controller.received[-2:] == ["BAND uv_365", "OFF"]
        assert light.current_band is None
        assert not source.is_open


def test_light_that_fails_mid_stack_is_still_switched_off(nine_images: list[Path]) -> None:
    with (
        LedControllerSimulator(faults={"uv_365": "LED open circuit"}) as faulty,
        SerialIlluminator(faulty.port, ["white", "uv_365", "red_660"]) as light,
        SimulatedDermatoscope(nine_images, fps=0) as source,
    ):
        with pytest.raises(IlluminatorError, match=r"refused 'BAND uv_365': error 3 LED open"):
            capture_multispectral(source, light, settle_seconds=0, discard_stale=0)
        assert faulty.received[2:] == ["BAND white", "BAND uv_365", "OFF"]


def test_unknown_band_is_rejected_before_any_light_changes(
    nine_images: list[Path], controller: LedControllerSimulator
) -> None:
    with (
        SerialIlluminator(controller.port, ["white"]) as light,
        SimulatedDermatoscope(nine_images, fps=0) as source,
    ):
        with pytest.raises(ValueError, match=r"band 'uv_365' is not configured on this station"):
            capture_multispectral(source, light, ["white", "uv_365"])
        with pytest.raises(ValueError, match=r"^no band to capture$"):
            capture_multispectral(source, light, [])
        assert controller.received == ["PING", "BANDS"]
