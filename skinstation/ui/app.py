"""Starting the station application: ``python -m skinstation`` or ``skinstation station``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from skinstation.resources import RESOURCES_DIR
from skinstation.settings import Settings
from skinstation.ui.main_window import MainWindow
from skinstation.ui.station_sync import StationSync

STYLESHEET = RESOURCES_DIR / "styles" / "station.qss"


def load_stylesheet(app: QApplication, path: Path = STYLESHEET) -> None:
    """Apply the station stylesheet (large touch targets, calm high-contrast colours).

    ``@ICONS@`` in the file stands for the bundled icons folder.
    """
    if path.is_file():
        icons = (RESOURCES_DIR / "icons").as_posix()
        app.setStyleSheet(path.read_text(encoding="utf-8").replace("@ICONS@", icons))


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The (single) ``QApplication``, high-DPI aware, styled."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("SkinStation")
    app.setOrganizationName("SkinStation")
    app.setApplicationDisplayName("SkinStation")
    load_stylesheet(app)
    return app


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of the station app (all optional; settings apply otherwise)."""
    parser = argparse.ArgumentParser(prog="python -m skinstation",
                                     description="SkinStation exam station")
    parser.add_argument("--home", help="station home (database, images, settings.toml)")
    parser.add_argument("--data-dir", help="data root; its ham10000/images feed the simulator")
    parser.add_argument("--model", help="model file to classify with")
    parser.add_argument("--camera", help="camera source: auto, simulator, synthetic, 0, ...")
    parser.add_argument("--language", choices=["en", "ko"])
    parser.add_argument("--exit-after", type=float, default=0.0, metavar="SECONDS",
                        help="close again after this long, printing the state (smoke tests)")
    args, _qt_args = parser.parse_known_args(argv)
    return args


def load_settings(args: argparse.Namespace) -> Settings:
    """The embedded defaults, the settings file and environment, then the options."""
    overrides: dict[str, object] = {}
    if args.home:
        overrides["home"] = Path(args.home)
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.model:
        overrides["model_path"] = Path(args.model)
    if args.language:
        overrides["language"] = args.language
    env = dict(os.environ)
    if args.home:
        env["SKINSTATION_HOME"] = args.home
    settings = Settings.load(env=env, **overrides)
    if args.camera:
        settings = settings.replace(camera={**_section(settings.camera), "source": args.camera})
    return settings


def _section(section: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Open the station window and run until it is closed."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_application()
    try:
        settings = load_settings(args)
    except (ValueError, OSError) as exc:
        QMessageBox.critical(None, "SkinStation", f"The station settings are invalid:\n{exc}")
        return 1
    config = os.environ.get("SKINSTATION_CONFIG")
    sync = StationSync(lambda: window.ctx.service)
    window = MainWindow(settings, sync=sync, config_file=Path(config) if config else None)
    app.aboutToQuit.connect(sync.stop)
    window.show()
    window.start()
    if args.exit_after > 0:
        QTimer.singleShot(round(args.exit_after * 1000), lambda: _report_and_quit(window))
    return app.exec()


def _report_and_quit(window: MainWindow) -> None:
    """Print what the window shows (for smoke tests), then close it."""
    login = window.login
    state = ("first run: create the administrator" if login.first_run else "login") \
        if login.ready else f"not ready: {login.message.message}"
    print(f"station window open: {state}; database {window.ctx.settings.database_url}",
          flush=True)
    window.close()
    QApplication.quit()
