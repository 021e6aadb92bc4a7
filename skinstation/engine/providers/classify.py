"""Classification as a service for providers: checks, bounded inference, consent, usage, audit.

One call, in order (each refusal names its reason):

1. the key's scopes: ``classify``, plus ``submit-for-review`` when the call carries consent
   (403; nothing written);
2. a slot in this process's bounded inference pool, else 503 at once (counted as ``busy``);
3. the provider's per-minute and per-day quotas (429 with Retry-After, counted as
   ``throttled``; :mod:`skinstation.engine.providers.ratelimit`); from here the call is admitted;
4. in a pool thread: the image's format, pixel size and complete decoding (422, counted as
   ``rejected``), then the station's own preprocessing and classifier on the engine's current
   model (:mod:`skinstation.engine.providers.inference_pool`), the optional quality check and
   heatmap;
5. with consent only: the image and the prediction stored as a provider capture, which joins
   the dermatologists' review queue and, once reviewed, retraining
   (:func:`skinstation.engine.ingest.service.store_provider_case`); without consent nothing of the
   image is kept;
6. the usage counters and one audit row, in the same transaction as step 5.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread

from skinstation.core.crypto import ENGINE_KEYS, data_cipher, encryption_enabled
from skinstation.core.images import EncodedImage, InvalidImageError, inspect_header
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError, InvalidError, UnavailableError
from skinstation.engine.ingest import service as ingest
from skinstation.engine.providers import ratelimit
from skinstation.engine.providers.inference_pool import (
    ClassifySettings,
    InferencePool,
    ModelHolder,
)
from skinstation.engine.providers.models import KeyScope
from skinstation.engine.providers.payloads import ClassifyRequest
from skinstation.engine.providers.ratelimit import Admission
from skinstation.engine.providers.service import ProviderPrincipal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inference:
    """What the pool thread computed for one image."""

    image: EncodedImage
    prediction: dict[str, Any]
    quality: dict[str, Any] | None
    heatmap_url: str | None


@dataclass(frozen=True)
class ClassifyResult:
    """The answer to a classify call (the API returns it as JSON)."""

    request_id: str
    model_version: str
    decision: str
    decision_text: str
    assessable: bool
    not_assessable_reason: str | None
    class_probabilities: dict[str, float]
    group_probabilities: dict[str, float]
    top_class: str | None
    referral: bool
    referral_threshold: float | None
    referral_text: str | None
    guidance: str
    notice: str
    language: str
    quality: dict[str, Any] | None
    heatmap_url: str | None
    consent: bool
    stored_for_review: bool
    submission_id: str | None
    end_user_id: str
    device_id: str
    access_time: datetime
    received_at: datetime
    seconds: float
    rate_limit: dict[str, int] = field(default_factory=dict)


def inspect_image(data: bytes, settings: ClassifySettings) -> EncodedImage:
    """Check an uploaded image's format and pixel size from its header (no decoding yet).

    The same check and limits as station ingest (:func:`skinstation.core.images.inspect_header`).

    Raises:
        InvalidError: Not an image, a format the engine does not take, or too small or large.
    """
    try:
        return inspect_header(data, settings.limits)
    except InvalidImageError as error:
        raise InvalidError(f"{error}; nothing stored") from None


class ClassifyService:
    """Classification for providers in one API process (see the module docstring).

    Args:
        db: The engine database.
        settings: Pool size, queue depth and image limits (default: from the environment).
    """

    def __init__(self, db: EngineDatabase, settings: ClassifySettings | None = None) -> None:
        self.db = db
        self.settings = settings or ClassifySettings.from_env()
        self.pool = InferencePool(self.settings)
        self.models = ModelHolder(db, self.settings)

    async def classify(self, principal: ProviderPrincipal,
                       request: ClassifyRequest) -> ClassifyResult:
        """Run one classify call end to end.

        Raises:
            ForbiddenError: The key lacks a needed scope (403).
            UnavailableError: No free inference slot, or no model deployed (503).
            RateLimitedError: A quota is used up (429).
            InvalidError: The image fails a check (422).
        """
        principal.require(KeyScope.CLASSIFY)
        if request.options.consent:
            principal.require(KeyScope.SUBMIT_FOR_REVIEW)
        received = utc_now()
        if not self.pool.try_acquire():
            await anyio.to_thread.run_sync(ratelimit.count_refused, self.db,
                                           principal.provider_id, "busy", received)
            raise UnavailableError(
                f"the engine is busy (this worker already runs or queues "
                f"{self.settings.threads + self.settings.queue_depth} classify calls, its "
                "maximum); retry after Retry-After seconds")
        try:
            admission = await anyio.to_thread.run_sync(ratelimit.admit, self.db, principal,
                                                       received)
            request_id = str(uuid.uuid4())
            try:
                inference = await self.pool.run(self._infer, request)
            except Exception as error:
                await anyio.to_thread.run_sync(self._record_refusal, principal, admission,
                                               request, request_id, error)
                raise
            return await anyio.to_thread.run_sync(self._finish, principal, admission, request,
                                                   request_id, received, inference)
        finally:
            self.pool.release()

    def _infer(self, request: ClassifyRequest) -> Inference:
        """Pool thread: check and decode the image, classify it, quality and heatmap."""
        from skinstation.inference.preprocessing import ImageDecodeError, decode_image
        from skinstation.inference.quality import assess_quality

        image = inspect_image(request.image, self.settings)
        try:
            rgb = decode_image(request.image, name="(upload)")
        except ImageDecodeError as error:
            raise InvalidError(f"{error}; nothing stored") from None
        classifier = self.models.get()
        prediction = classifier.classify(rgb)
        options = request.options
        quality = None
        if options.quality:
            quality = assess_quality(rgb, self.db.settings.quality).to_dict()
        heatmap = None
        if options.heatmap and prediction.assessable:
            heatmap = _heatmap_url(classifier, rgb, prediction.top_class)
        return Inference(image, prediction.to_dict(options.language), quality, heatmap)

    def _record_refusal(self, principal: ProviderPrincipal, admission: Admission,
                        request: ClassifyRequest, request_id: str, error: Exception) -> None:
        """Count and audit an admitted call that got no classification."""
        outcome = "rejected" if isinstance(error, InvalidError) else "failed"
        status = error.status_code if isinstance(error, EngineError) else 500
        with self.db.transaction() as session:
            ratelimit.increment(session, principal.provider_id, admission.day, **{outcome: 1})
            audit.record(session, principal.actor, f"provider.classify_{outcome}",
                         "provider_request", request_id,
                         {**_who(principal, request), "status": status,
                          "reason": str(error)[:500]})

    def _finish(self, principal: ProviderPrincipal, admission: Admission,
                request: ClassifyRequest, request_id: str, received: datetime,
                inference: Inference) -> ClassifyResult:
        options, prediction = request.options, inference.prediction
        access_time = options.access_time or received
        submission: str | None = None
        new = False
        with self.db.transaction() as session:
            if options.consent:
                case = ingest.ProviderCase(
                    uid=request_id, provider_id=principal.provider_id,
                    end_user_ref=options.end_user_id, device_id=options.device_id,
                    body_site=options.body_site, access_time=access_time,
                    capture_time=options.capture_time or access_time, received_at=received,
                    model_version=prediction["model_version"],
                    class_probabilities=prediction["class_probs"],
                    group_probabilities=prediction["group_probs"],
                    decision=prediction["decision"], referral=prediction["referral"])
                capture, duplicate = ingest.store_provider_case(
                    self.db, session, case, inference.image, principal.actor)
                submission, new = capture.uid, not duplicate
            ratelimit.increment(session, principal.provider_id, admission.day, classified=1,
                                not_assessable=int(not prediction["assessable"]),
                                submitted=int(new))
            audit.record(session, principal.actor, "provider.classified", "provider_request",
                         request_id, {**_who(principal, request),
                                      "model_version": prediction["model_version"],
                                      "decision": prediction["decision"],
                                      "referral": prediction["referral"],
                                      "submission": submission})
        return ClassifyResult(
            request_id=request_id, model_version=prediction["model_version"],
            decision=prediction["decision"], decision_text=prediction["decision_text"],
            assessable=prediction["assessable"],
            not_assessable_reason=prediction["not_assessable_reason"] or None,
            class_probabilities=prediction["class_probs"],
            group_probabilities=prediction["group_probs"],
            top_class=prediction["top_class"] or None, referral=prediction["referral"],
            referral_threshold=prediction["referral_threshold"],
            referral_text=prediction["referral_text"] or None,
            guidance=prediction["guidance"], notice=prediction["notice"],
            language=options.language, quality=inference.quality,
            heatmap_url=inference.heatmap_url, consent=options.consent,
            stored_for_review=submission is not None, submission_id=submission,
            end_user_id=options.end_user_id, device_id=options.device_id,
            access_time=access_time, received_at=received,
            seconds=round(float(prediction["seconds"]), 4),
            rate_limit={"limit_minute": principal.requests_per_minute,
                        "remaining_minute": admission.remaining_minute,
                        "limit_day": principal.requests_per_day,
                        "remaining_day": admission.remaining_day})

    def warm_up(self) -> None:
        """Load the deployed model now, if there is one (errors wait for the first call)."""
        try:
            self.models.get()
        except Exception as error:  # reported again by the first call
            log.info("no model loaded at start-up: %s", error)

    def shutdown(self) -> None:
        """Stop the pool threads."""
        self.pool.shutdown()


def audited_end_user(end_user_id: str) -> str:
    """The end user's id as the append-only audit log keeps it: encrypted when data is.

    Deterministic (AES-SIV), so an auditor finds one user's rows by encrypting the id the same
    way; never plaintext in a log that erasure cannot touch.
    """
    if not encryption_enabled(ENGINE_KEYS):
        return end_user_id
    return data_cipher(ENGINE_KEYS).encrypt_text(end_user_id, context="audit.end_user_id",
                                                 deterministic=True)


def _who(principal: ProviderPrincipal, request: ClassifyRequest) -> dict[str, Any]:
    options = request.options
    return {"provider_id": principal.provider_id, "key_id": principal.key_id,
            "end_user_id": audited_end_user(options.end_user_id),
            "device_id": options.device_id,
            "consent": options.consent,
            "access_time": None if options.access_time is None
            else options.access_time.isoformat()}


def _heatmap_url(classifier: Any, rgb: Any, target_class: str) -> str:
    """Grad-CAM overlay on the model's input image, as a ``data:image/png;base64`` URL."""
    import cv2

    from skinstation.inference.heatmap import explain

    overlay = explain(classifier, rgb, target_class or None).overlay()
    ok, png = cv2.imencode(".png", overlay[:, :, ::-1])
    if not ok:  # pragma: no cover - encoding an RGB uint8 array does not fail
        raise UnavailableError("heatmap encoding failed")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
