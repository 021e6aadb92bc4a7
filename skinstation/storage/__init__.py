"""The station's labelled local storage: database, content-addressed images, audit, outbox.

Typical use::

    database = init_database(settings)          # migrate to head + crash recovery
    store = StationStore(database)
    patient = store.create_patient("P-0001", actor_id=operator.id)
    visit = store.open_visit(patient.id, operator_id=operator.id)
    capture = store.save_capture(visit.id, jpeg_bytes, band="white", ...)

This package is the bottom layer: it imports nothing from auth, services, UI or engine.
"""

from skinstation.core.images import EncodedImage, ImageStore, encode_image
from skinstation.core.timeutil import Clock, utc_now
from skinstation.storage.audit import AuditAction
from skinstation.storage.database import (
    Database,
    create_station_engine,
    current_revision,
    head_revision,
    init_database,
    upgrade_to_head,
)
from skinstation.storage.errors import (
    AppendOnlyError,
    DuplicateError,
    ImageError,
    ImageIntegrityError,
    ImageMissingError,
    InactiveOperatorError,
    InvalidImageError,
    LabelRuleError,
    NotFoundError,
    PatientNameNotAllowedError,
    StorageError,
    VisitClosedError,
)
from skinstation.storage.labels import LabelHistory
from skinstation.storage.models import (
    INDETERMINATE,
    SKIN_CANCER,
    AuditEvent,
    Capture,
    EngineReview,
    Label,
    LabelKind,
    Operator,
    OutboxEntry,
    OutboxState,
    Patient,
    Prediction,
    Role,
    SyncState,
    Visit,
)
from skinstation.storage.outbox import Outbox
from skinstation.storage.queries import CaptureSummary, ReviewState
from skinstation.storage.recovery import DEFAULT_ORPHAN_GRACE, RecoveryReport, recover
from skinstation.storage.store import StationStore
from skinstation.storage.sync_records import CaptureUpload, ReceivedReview, SyncRecords

__all__ = [
    "DEFAULT_ORPHAN_GRACE",
    "INDETERMINATE",
    "SKIN_CANCER",
    "AppendOnlyError",
    "AuditAction",
    "AuditEvent",
    "Capture",
    "CaptureSummary",
    "CaptureUpload",
    "Clock",
    "Database",
    "DuplicateError",
    "EncodedImage",
    "EngineReview",
    "ImageError",
    "ImageIntegrityError",
    "ImageMissingError",
    "ImageStore",
    "InactiveOperatorError",
    "InvalidImageError",
    "Label",
    "LabelHistory",
    "LabelKind",
    "LabelRuleError",
    "NotFoundError",
    "Operator",
    "Outbox",
    "OutboxEntry",
    "OutboxState",
    "Patient",
    "PatientNameNotAllowedError",
    "Prediction",
    "ReceivedReview",
    "RecoveryReport",
    "ReviewState",
    "Role",
    "StationStore",
    "StorageError",
    "SyncRecords",
    "SyncState",
    "Visit",
    "VisitClosedError",
    "create_station_engine",
    "current_revision",
    "encode_image",
    "head_revision",
    "init_database",
    "recover",
    "upgrade_to_head",
    "utc_now",
]
