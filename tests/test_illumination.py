"""Illumination bands, the serial LED-controller driver over a real pty, and manual light."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from skinstation.camera import (
    BANDS,
    Band,
    IlluminatorError,
    LedControllerSimulator,
    ManualIlluminator,
    SerialIlluminator,
    open_illuminator,
    resolve_bands,
)
from skinstation.settings import CameraSettings


@pytest.fixture()
def controller() -> Iterator[LedControllerSimulator]:
    with LedControllerSimulator() as simulator:
        yield simulator


def test_every_configured_band_is_known_with_its_wavelength() -> None:
    assert tuple(BANDS) == CameraSettings().bands
    assert {name: band.wavelength_nm for name, band in BANDS.items()} == {
        "white": None, "cross_polarised": None, "uv_365": 365, "violet_405": 405,
        "amber_590": 590, "red_660": 660, "nir_850": 850,
    }
    assert BANDS["uv_365"].display_name == "Ultraviolet 365 nm"
    assert BANDS["cross_polarised"].display_name == "Cross-polarised white light"


def test_resolve_bands_rejects_unknown_and_repeated_names() -> None:
    assert resolve_bands(["nir_850", "white"]) == (BANDS["nir_850"], BANDS["white"])
    with pytest.raises(ValueError, match=r"^unknown band\(s\) blue, x-ray; known: white, "):
        resolve_bands(["white", "blue", "x-ray"])
    with pytest.raises(ValueError, match=r"^band list repeats a band: white, white$"):
        resolve_bands(["white", "white"])


def test_simulated_controller_speaks_the_documented_protocol(
    controller: LedControllerSimulator,
) -> None:
    exchanges = [
        (b"PING\n", b"PONG\n"),
        (b"BANDS\n", b"BANDS white cross_polarised uv_365 violet_405 amber_590 red_660 nir_850\n"),
        (b"STATUS\n", b"STATUS OFF\n"),
        (b"BAND uv_365\r\n", b"OK BAND uv_365\n"),
        (b"STATUS\n", b"STATUS uv_365\n"),
        (b"BAND blue\n", b"ERR 2 unknown band blue\n"),
        (b"DANCE\n", b"ERR 1 unknown command DANCE\n"),
        (b"BAND " + b"x" * 70 + b"\n", b"ERR 4 line too long\n"),
        (b"OFF\n", b"OK OFF\n"),
    ]
    with serial.Serial(controller.port, 115200, timeout=1.0) as port:
        for request, reply in exchanges:
            port.write(request)
            assert port.read_until(b"\n") == reply
    assert controller.lit is None


def test_driver_switches_bands_and_reads_status(controller: LedControllerSimulator) -> None:
    with SerialIlluminator(controller.port, ["white", "uv_365"], timeout_seconds=1.0) as light:
        assert light.controller_bands == tuple(BANDS)
        assert light.set_band("uv_365") == BANDS["uv_365"]
        assert controller.lit == "uv_365"
        assert light.current_band == BANDS["uv_365"]
        assert light.status() == "uv_365"
        light.off()
        assert light.status() is None
        assert light.current_band is None
        light.set_band("white")
    assert controller.lit is None  # closing switches the light off
    assert controller.received == [
        "PING", "BANDS", "BAND uv_365", "STATUS", "OFF", "STATUS", "BAND white", "OFF",
    ]


def test_band_not_configured_on_the_station(controller: LedControllerSimulator) -> None:
    with (
        SerialIlluminator(controller.port, ["white"]) as light,
        pytest.raises(ValueError) as raised,
    ):
        light.set_band("nir_850")
    assert str(raised.value) == "band 'nir_850' is not configured on this station (offered: white)"
    assert "BAND nir_850" not in controller.received


def test_controller_that_does_not_answer_times_out() -> None:
    with LedControllerSimulator(behaviour="silent") as silent:
        light = SerialIlluminator(silent.port, ["white"], timeout_seconds=0.2)
        started = time.monotonic()
        with pytest.raises(IlluminatorError) as raised:
            light.open()
        elapsed = time.monotonic() - started
    assert str(raised.value) == (
        f"LED controller on {silent.port} did not answer 'PING' within 0.2 s"
    )
    assert 0.15 < elapsed < 1.0


def test_controller_that_hangs_mid_session_times_out(controller: LedControllerSimulator) -> None:
    with SerialIlluminator(controller.port, ["white"], timeout_seconds=0.2) as light:
        controller.behaviour = "silent"
        with pytest.raises(IlluminatorError) as raised:
            light.set_band("white")
        assert light.current_band is None
        controller.behaviour = "normal"
        light.set_band("white")  # the late-reply guard keeps the next command in step
        assert light.current_band == BANDS["white"]
    assert str(raised.value) == (
        f"LED controller on {controller.port} did not answer 'BAND white' within 0.2 s"
    )


def test_late_reply_is_not_taken_for_the_next_commands(
    controller: LedControllerSimulator,
) -> None:
    with SerialIlluminator(controller.port, ["white"], timeout_seconds=0.2) as light:
        controller.reply_delay_seconds = 0.3
        with pytest.raises(IlluminatorError, match=r"did not answer 'BAND white' within 0.2 s"):
            light.set_band("white")
        controller.reply_delay_seconds = 0.0
        time.sleep(0.3)  # "OK BAND white" arrives now, after its command gave up
        assert light.status() == "white"


def test_error_reply_is_reported_with_code_and_text() -> None:
    with (
        LedControllerSimulator(faults={"uv_365": "LED over temperature"}) as faulty,
        SerialIlluminator(faulty.port, ["white", "uv_365"]) as light,
    ):
        light.set_band("white")
        with pytest.raises(IlluminatorError) as raised:
            light.set_band("uv_365")
        assert light.current_band is None
    assert str(raised.value) == (
        f"LED controller on {faulty.port} refused 'BAND uv_365': error 3 LED over temperature"
    )


def test_garbage_reply_is_reported() -> None:
    with LedControllerSimulator(behaviour="garbage") as babbling:
        light = SerialIlluminator(babbling.port, ["white"], timeout_seconds=0.5)
        with pytest.raises(IlluminatorError) as raised:
            light.open()
    assert str(raised.value) == (
        f"LED controller on {babbling.port} sent an unexpected reply to 'PING': "
        "b'\\xfe\\x80#?~\\n'"
    )


def test_missing_port() -> None:
    with pytest.raises(IlluminatorError) as raised:
        SerialIlluminator("/dev/ttyNO-SUCH-CONTROLLER", ["white"]).open()
    assert str(raised.value) == (
        "cannot open LED controller port /dev/ttyNO-SUCH-CONTROLLER: "
        "no such port (is the controller plugged in?)"
    )


def test_controller_lacking_a_configured_band() -> None:
    with (
        LedControllerSimulator(bands=("white", "uv_365")) as small,
        pytest.raises(IlluminatorError) as raised,
    ):
        SerialIlluminator(small.port, ["white", "nir_850", "red_660"]).open()
    assert str(raised.value) == (
        f"LED controller on {small.port} has no nir_850, red_660 band (it offers: white, uv_365)"
    )


def test_controller_unplugged_mid_session() -> None:
    simulator = LedControllerSimulator()
    port = simulator.start()
    light = SerialIlluminator(port, ["white"], timeout_seconds=0.3)
    light.open()
    simulator.stop()
    with pytest.raises(IlluminatorError) as raised:
        light.set_band("white")
    assert str(raised.value).startswith(f"lost the LED controller on {port}: ")
    assert str(raised.value).endswith(" (unplugged?)")
    with pytest.raises(IlluminatorError, match=f"^LED controller on {port} is not open$"):
        light.command("PING")
    light.close()


def test_manual_light_records_the_band_and_tells_the_operator() -> None:
    asked: list[Band | None] = []
    light = ManualIlluminator(["white", "nir_850"], on_change=asked.append)
    assert light.manual
    assert light.description == "manual light (no controller)"
    with light:
        assert light.set_band("nir_850") == BANDS["nir_850"]
        assert light.current_band == BANDS["nir_850"]
        light.off()
    assert asked == [BANDS["nir_850"], None]


def test_open_illuminator_per_settings() -> None:
    manual = open_illuminator(CameraSettings(bands=("white",)))
    assert isinstance(manual, ManualIlluminator)
    simulated = open_illuminator(CameraSettings(illuminator_port="simulator", bands=("red_660",)))
    try:
        assert isinstance(simulated, SerialIlluminator)
        assert simulated.port.startswith("/dev/pts/")
        assert simulated.set_band("red_660") == BANDS["red_660"]
        assert simulated.status() == "red_660"
    finally:
        simulated.close()
    with pytest.raises(IlluminatorError, match=r"is not open"):
        simulated.status()
