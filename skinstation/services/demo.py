"""``skinstation demo``: the whole station flow without the UI, printing each step.

Log in (creating the first administrator and a staff account on a fresh database), open a
visit, capture from the simulated dermatoscope under two illumination bands switched by the
simulated serial LED controller, quality-check, classify, save, label, and list the history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path

from skinstation.auth import Role
from skinstation.camera import capture_multispectral, open_frame_source, open_illuminator
from skinstation.services.station import StationService
from skinstation.settings import Settings

Say = Callable[[str], None]


def run_demo(settings: Settings, images: Path | None, username: str, password: str,
             bands: tuple[str, str] = ("white", "cross_polarised"),
             pseudonym: str = "DEMO-0001", say: Say = print) -> list[int]:
    """Run the demo flow; returns the ids of the saved captures.

    Args:
        settings: Station settings (the demo uses their database and model).
        images: Folder of real lesion images for the simulated dermatoscope (None: synthetic
            frames, which are classified but, being no patient image, not saved).
        username: Staff username to log in with (created with ``password`` on first run,
            together with an ``admin`` account).
        password: The password (never printed).
        bands: Two illumination bands to capture.
        pseudonym: Patient pseudonym.
        say: Where each step is printed.
    """
    camera = dataclasses.replace(
        settings.camera, source="simulator" if images else "synthetic",
        simulator_folder=str(images or ""), illuminator_port="simulator")
    settings = settings.replace(camera=camera)
    station = StationService(settings)
    say(f"[1] database {settings.database_url}")
    if station.needs_first_admin():
        station.create_first_admin("admin", "Station administrator", password)
        admin = station.login("admin", password)
        station.create_operator(admin, username, "Demo nurse", Role.STAFF, password)
        station.logout(admin)
        say(f"    first run: created administrator 'admin' and staff account {username!r}")
    session = station.login(username, password)
    say(f"[2] logged in as {session.display_name} ({session.role.value})")
    info = station.model_info()
    say(f"    model {info.version} ({info.source}), referral threshold "
        f"{info.referral_threshold}")
    patient = station.find_or_create_patient(session, pseudonym)
    visit = station.start_visit(session, patient.id)
    say(f"[3] visit {visit.id} opened for patient {patient.pseudonym}")
    access_time = dt.datetime.now(dt.UTC)
    with open_frame_source(settings.camera) as source, \
            open_illuminator(settings.camera) as light:
        say(f"[4] frame source: {source.device_id} ({source.selection_reason}); "
            f"illuminator: {light.__class__.__name__}")
        stack = capture_multispectral(source, light, bands=list(bands),
                                      settle_seconds=settings.camera.band_settle_seconds,
                                      discard_stale=settings.camera.stale_frames)
    saved: list[int] = []
    group = None
    for index, band_frame in enumerate(stack):
        frame = band_frame.frame
        analysis = station.analyse(frame.pixels)
        say(f"[5] band {band_frame.band.display_name}: frame {frame.width}x{frame.height} "
            f"{frame.label or ''} quality {'passed' if analysis.quality.passed else 'FAILED'}")
        for reason in analysis.quality.reasons:
            say(f"      {reason}")
        prediction = analysis.prediction
        if prediction is not None:
            top = sorted(prediction.class_probs.items(), key=lambda kv: -kv[1])[:3]
            say(f"    classified in {analysis.seconds * 1000:.0f} ms: "
                f"{prediction.decision_text()}"
                + (" + SAFETY REFERRAL" if prediction.referral else "")
                + "; top classes " + ", ".join(f"{c} {p:.2f}" for c, p in top))
            say(f"    guidance: {prediction.guidance()}")
        if frame.synthetic:
            say("    synthetic demonstration frame: not saved to the patient record")
            continue
        group = group or uuid.uuid4().hex
        stored = station.save_capture(session, visit.id, frame, band=band_frame.band.name,
                                      body_site="back", access_time=access_time,
                                      prediction=prediction, multispectral_group_id=group,
                                      multispectral_index=index)
        saved.append(stored.capture.id)
        say(f"[6] saved capture {stored.capture.id} (sha256 {stored.capture.image_sha256[:12]}…)")
        if prediction is not None and prediction.top_class:
            station.label(session, stored.capture.id, prediction.top_class,
                          note="demo: operator accepted the model's top class")
            say(f"[7] operator label {prediction.top_class!r} recorded")
    say("[8] history:")
    for row in station.history(session, patient_id=patient.id):
        say(f"    capture {row.capture_id} {row.capture_time:%Y-%m-%d %H:%M:%S} band "
            f"{row.band} decision {row.decision or '-'} label {row.final_label or '-'} "
            f"review {row.review_state.value}")
    station.close_visit(session, visit.id)
    station.logout(session)
    say("[9] visit closed, logged out. Not a diagnosis: results need clinical review.")
    return saved
