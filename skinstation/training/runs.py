"""Long training runs in a run folder: request, checkpoint, status, log.

A run lives in ``<home>/runs/<name>/`` (outside the checkout):

- ``request.json``: the ``skinstation train`` arguments it was started with, the code's commit
  and when it started; ``skinstation train --resume NAME`` re-reads them, so a resumed run
  is the same run;
- ``checkpoint.pt``: the whole-network fine-tune's state after every epoch and when the
  process is asked to stop (SIGTERM, SIGINT), written atomically;
- ``status.json``: state (running, stopped, finished, failed), epochs done, seconds per
  epoch and the validation curve, rewritten after every epoch; ``skinstation train --status
  NAME`` prints it with an ETA;
- ``train.log``: everything the run printed.

Runs take days on 2 CPU cores; a machine's processes may end with the session, its files
stay. Starting the same command with ``--resume`` continues from the last checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinstation.training.progress import format_seconds

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class RunError(ValueError):
    """A run folder is missing, malformed, or already holds another run."""


@dataclass(frozen=True)
class RunFolder:
    """The files of one run."""

    root: Path

    @property
    def name(self) -> str:
        """The run's name (its folder's)."""
        return self.root.name

    @property
    def request(self) -> Path:
        """``request.json``: the arguments the run was started with."""
        return self.root / "request.json"

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.pt``: the whole-network fine-tune's latest state."""
        return self.root / "checkpoint.pt"

    @property
    def status(self) -> Path:
        """``status.json``: state, epochs and the validation curve."""
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        """``train.log``: what the run printed."""
        return self.root / "train.log"


def run_folder(home: Path, name_or_path: str) -> RunFolder:
    """The run folder of a name (under ``<home>/runs``) or of an existing folder path.

    Raises:
        RunError: The name is not a plain folder name and no such folder exists.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "request.json").is_file():
        return RunFolder(path.resolve())
    if not RUN_NAME.match(name_or_path):
        raise RunError(f"run name {name_or_path!r}: use letters, digits, '.', '_' or '-' "
                       "(or give the path of an existing run folder)")
    return RunFolder(home / "runs" / name_or_path)


def _commit() -> str:
    """The checkout's commit, ``-dirty`` when the code has uncommitted changes ("" if unknown)."""
    where = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False, cwd=where)
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=False,
                                 cwd=where)
    except OSError:
        return ""
    if head.returncode != 0:
        return ""
    return head.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


def start_run(folder: RunFolder, arguments: Sequence[str]) -> None:
    """Create the run folder and record the arguments the run starts with.

    Raises:
        RunError: The folder already holds a run started with other arguments.
    """
    if folder.request.is_file():
        existing = read_request(folder)
        if list(existing["arguments"]) != list(arguments):
            raise RunError(f"run {folder.name} already exists with other arguments "
                           f"({folder.request}); resume it with --resume {folder.name} or "
                           "choose another name")
        return
    folder.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_json(folder.request, {"arguments": list(arguments), "commit": _commit(),
                                 "started_at": now})
    write_status(folder, "starting", [], [], 0)


def read_request(folder: RunFolder) -> dict[str, Any]:
    """The recorded request of a run.

    Raises:
        RunError: There is no run in the folder or its request is unreadable.
    """
    if not folder.request.is_file():
        raise RunError(f"no run {folder.name!r} (looked for {folder.request})")
    try:
        data = json.loads(folder.request.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"unreadable run request {folder.request}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("arguments"), list):
        raise RunError(f"malformed run request {folder.request}: no argument list")
    return data


def write_status(folder: RunFolder, state: str, history: Sequence[dict[str, float]],
                 epoch_seconds: Sequence[float], total_epochs: int, message: str = "") -> None:
    """Rewrite ``status.json`` (atomically)."""
    curve = [{"epoch": int(h["epoch"]) + 1, "val_balanced_accuracy": h["val_balanced_accuracy"],
              **({"loss": h["loss"]} if "loss" in h else {})}
             for h in history if h.get("phase") == 3.0]
    _write_json(folder.status, {
        "state": state, "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "epochs_done": max([c["epoch"] for c in curve], default=0), "total_epochs": total_epochs,
        "epoch_seconds": [round(s, 1) for s in epoch_seconds], "curve": curve,
        "message": message,
    })


def restate(folder: RunFolder, state: str, message: str = "") -> None:
    """Rewrite the status with a new state and message, keeping the curve and timings."""
    status = read_status(folder)
    status.update(state=state, message=message,
                  updated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    _write_json(folder.status, status)


def read_status(folder: RunFolder) -> dict[str, Any]:
    """The last status a run wrote.

    Raises:
        RunError: No such run, or it has written no status yet.
    """
    read_request(folder)
    if not folder.status.is_file():
        raise RunError(f"run {folder.name} has written no status yet ({folder.status})")
    try:
        data = json.loads(folder.status.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"unreadable run status {folder.status}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("curve"), list):
        raise RunError(f"malformed run status {folder.status}: no validation curve")
    return data


def format_status(folder: RunFolder) -> str:
    """What ``skinstation train --status`` prints: state, epoch, ETA, validation curve."""
    request, status = read_request(folder), read_status(folder)
    done, total = int(status["epochs_done"]), int(status["total_epochs"])
    seconds = [float(s) for s in status["epoch_seconds"]]
    lines = [f"run {folder.name} ({folder.root}): {status['state']}, updated "
             f"{status['updated_at']}", f"started {request.get('started_at', '?')} at commit "
             f"{request.get('commit', '') or 'unknown'}",
             f"epoch {done}/{total} of the whole-network fine-tune"]
    if seconds:
        mean = sum(seconds) / len(seconds)
        lines.append(f"{format_seconds(mean)} per epoch; ETA "
                     f"{format_seconds(mean * max(total - done, 0))} "
                     "(plus calibration and evaluation)" if status["state"] != "finished"
                     else f"{format_seconds(mean)} per epoch")
    if status.get("message"):
        lines.append(status["message"])
    best = max((c["val_balanced_accuracy"] for c in status["curve"]), default=None)
    for point in status["curve"]:
        mark = " *" if point["val_balanced_accuracy"] == best else ""
        loss = f", loss {point['loss']:.4f}" if "loss" in point else ""
        label = "start" if point["epoch"] == 0 else f"epoch {point['epoch']}"
        lines.append(f"  {label:>9}: val balanced accuracy "
                     f"{point['val_balanced_accuracy']:.4f}{loss}{mark}")
    return "\n".join(lines)


class StopFlag:
    """Set by SIGTERM/SIGINT while :func:`stop_on_signals` is active (``is_set()``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the run to stop at the next batch boundary."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Route SIGTERM and SIGINT to ``flag`` (main thread only), restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        flag.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
