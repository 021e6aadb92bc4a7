"""A bounded schemathesis pass over the engine's OpenAPI document (no tests here).

:func:`run_pass` sends generated requests (schema-conforming and schema-violating) to every
documented operation once per credential and checks each answer: no 5xx, a documented status
code, a body matching the documented schema, a documented content type. It returns the
figures (:class:`PassFigures`) so a test can assert on them and a bench script can print them.

Generation is derandomized (the same requests every run), keeps no example database and never
shrinks: a failure is recorded with one reproducing request and the pass goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = (not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance)
"""What every answer must pass."""

CaseTweak = Callable[[Any], st.SearchStrategy[Any]]
"""Maps a generated case to a strategy of cases (e.g. one with a real image part)."""


@dataclass
class PassFigures:
    """What a pass sent and found.

    Attributes:
        answers: Answers per (credential, operation label, status code): every request sent.
        operations: Operations exercised (each once per credential).
        failures: Failed checks per check name (one count per failing answer and check).
        samples: One line per distinct failure: credential, operation, check, status, detail.
        seconds: Wall time of the pass.
    """

    answers: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    operations: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def _sum(self, key: Callable[[str, str, int], Any]) -> Counter[Any]:
        totals: Counter[Any] = Counter()
        for (credential, label, status), count in self.answers.items():
            totals[key(credential, label, status)] += count
        return totals

    @property
    def requests(self) -> int:
        """Requests sent."""
        return sum(self.answers.values())

    @property
    def by_class(self) -> Counter[str]:
        """Answers per status class (``"2xx"`` .. ``"5xx"``)."""
        return self._sum(lambda _c, _l, status: _status_class(status))

    @property
    def by_status(self) -> Counter[int]:
        """Answers per status code."""
        return self._sum(lambda _c, _l, status: status)

    @property
    def by_credential(self) -> Counter[tuple[str, str]]:
        """Answers per (credential, status class)."""
        return self._sum(lambda credential, _l, status: (credential, _status_class(status)))

    @property
    def by_operation(self) -> Counter[tuple[str, int]]:
        """Answers per (operation label, status code)."""
        return self._sum(lambda _c, label, status: (label, status))

    def summary(self) -> str:
        """A few lines a person (or a bench log) reads."""
        classes = ", ".join(f"{name}: {count}" for name, count in sorted(self.by_class.items()))
        failed = ", ".join(f"{name}: {count}" for name, count in sorted(self.failures.items()))
        return (f"{self.requests} requests to {self.operations} operations in "
                f"{self.seconds:.1f} s; {classes}; failures: {failed or 'none'}")


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def _strategy(operation: Any, tweak: CaseTweak | None,
              negative_share: float) -> st.SearchStrategy[Any]:
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if tweak is not None:
        positive = positive.flatmap(tweak)
    if negative_share <= 0:
        return positive
    negative = operation.as_strategy(GenerationMode.NEGATIVE)
    weight = max(1, round(negative_share * 10))
    return st.one_of(*([positive] * (10 - weight)), *([negative] * weight))


def _record(figures: PassFigures, seen: set[tuple[str, str, str]], credential: str,
            label: str, check: str, status: int | str, detail: str) -> None:
    figures.failures[check] += 1
    key = (label, check, str(status))
    if key not in seen:
        seen.add(key)
        detail = " ".join(detail.split())[:300]
        figures.samples.append(f"[{credential}] {label} {check} ({status}): {detail}")


def run_pass(
    schema: Any,
    credentials: Mapping[str, Mapping[str, str]],
    *,
    max_examples: int = 20,
    examples_for: Mapping[str, int] | None = None,
    tweaks: Mapping[str, CaseTweak] | None = None,
    last: Sequence[str] = (),
    negative_share: float = 0.3,
    session_for: Callable[[], requests.Session] = requests.Session,
    call_kwargs: Mapping[str, Any] | None = None,
    observe: Callable[[str, Any, Any], None] | None = None,
) -> PassFigures:
    """Run the bounded pass: every operation, once per credential, in the order given.

    Args:
        schema: A loaded schemathesis schema (``schemathesis.openapi.from_url``/``from_asgi``).
        credentials: Name → headers that authenticate as it (``{}``: none), in run order.
        max_examples: Generated requests per operation and credential.
        examples_for: Fewer (or more) for some operations, by label (``"POST /api/v1/x"``).
        tweaks: Per operation label, a map of each positive case to a strategy of cases.
        last: Labels run after every other operation of a credential (e.g. logout).
        negative_share: Share of schema-violating requests (0 to 1).
        session_for: Makes the HTTP session of each credential.
        call_kwargs: More arguments of every ``case.call`` (e.g. ``verify``, ``timeout``).
        observe: Called with (credential, case, response) after each answer.

    Returns:
        The figures of the pass.
    """
    figures = PassFigures()
    seen: set[tuple[str, str, str]] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: last.index(op.label) + 1 if op.label in last else 0)
    figures.operations = len(operations)
    started = time.monotonic()
    for credential, headers in credentials.items():
        with session_for() as session:
            for operation in operations:
                _run_operation(figures, seen, credential, dict(headers), session, operation,
                               (examples_for or {}).get(operation.label, max_examples),
                               (tweaks or {}).get(operation.label), negative_share,
                               dict(call_kwargs or {}), observe)
    figures.seconds = time.monotonic() - started
    return figures


def _run_operation(figures: PassFigures, seen: set[tuple[str, str, str]], credential: str,
                   headers: dict[str, str], session: requests.Session, operation: Any,
                   examples: int, tweak: CaseTweak | None, negative_share: float,
                   call_kwargs: dict[str, Any],
                   observe: Callable[[str, Any, Any], None] | None) -> None:
    if examples <= 0:
        return
    label = operation.label

    def one(case: Any) -> None:
        sent = {**(case.headers or {}), **headers}
        if headers:  # the credential replaces whatever generated credential the case has
            for name in list(sent):
                if name.lower() in {"authorization", "x-api-key"} and name not in headers:
                    sent.pop(name)
        case.headers = sent
        try:
            response = case.call(session=session, **call_kwargs)
        except requests.RequestException as error:  # no answer at all: a harness failure
            _record(figures, seen, credential, label, "no_answer", "-",
                    f"{type(error).__name__}: {error}")
            return
        except Exception as error:  # an in-process app raises what a server answers with 500
            figures.answers[(credential, label, 500)] += 1
            _record(figures, seen, credential, label, "not_a_server_error", 500,
                    f"{type(error).__name__}: {error}")
            return
        figures.answers[(credential, label, response.status_code)] += 1
        if observe is not None:
            observe(credential, case, response)
        for check in CHECKS:
            try:
                case.validate_response(response, checks=[check])
            except FailureGroup as group:
                failure = group.exceptions[0]
                _record(figures, seen, credential, label, check.__name__, response.status_code,
                        f"{failure.title}: {failure.message} body={response.text[:200]!r}")

    test = hypothesis.given(case=_strategy(operation, tweak, negative_share))(one)
    test = hypothesis.settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(test)
    test()


def load_schema(base_url: str | None = None, app: Any = None,
                path: str = "/api/v1/openapi.json", **kwargs: Any) -> Any:
    """Load the engine's OpenAPI document from a running server or an in-process ASGI app."""
    if app is not None:
        return schemathesis.openapi.from_asgi(path, app, **kwargs)
    assert base_url is not None
    return schemathesis.openapi.from_url(f"{base_url}{path}", **kwargs)


# -- strategies that reach past the first check --------------------------------------------

@dataclass(frozen=True)
class SampleImage:
    """A real image file a tweak sends, with what a capture document says about it."""

    data: bytes
    format: str
    width: int
    height: int

    @classmethod
    def of(cls, data: bytes) -> SampleImage:
        """Read the format and size of an encoded image."""
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            kind = {"JPEG": "jpg", "PNG": "png"}[str(image.format)]
            return cls(data, kind, image.width, image.height)


def with_values(path: Mapping[str, Sequence[Any]] | None = None,
                body: Mapping[str, Sequence[Any]] | None = None) -> CaseTweak:
    """Most cases take known-good values (a stored id, a real key) for some fields."""
    fields = [("path", name, list(values)) for name, values in (path or {}).items()]
    fields += [("body", name, list(values)) for name, values in (body or {}).items()]

    def tweak(case: Any) -> st.SearchStrategy[Any]:
        def apply(choices: tuple[tuple[bool, Any], ...]) -> Any:
            for (where, name, _), (keep, value) in zip(fields, choices, strict=True):
                if keep:
                    continue
                if where == "path":
                    case.path_parameters = {**(case.path_parameters or {}), name: value}
                elif isinstance(case.body, dict):
                    case.body = {**case.body, name: value}
            return case

        return st.tuples(*(st.tuples(st.integers(0, 3).map(lambda n: n == 3),
                                     st.sampled_from(values)) for _, _, values in fields)
                         ).map(apply)

    return tweak


def classify_with_images(images: Sequence[SampleImage]) -> CaseTweak:
    """Most classify calls carry a real image (multipart file or base64 JSON), some keep theirs."""
    import base64

    def tweak(case: Any) -> st.SearchStrategy[Any]:
        def apply(choice: tuple[bool, SampleImage]) -> Any:
            keep, image = choice
            if keep or not isinstance(case.body, dict):
                return case
            body = dict(case.body)
            if "image_base64" in body:
                body["image_base64"] = base64.b64encode(image.data).decode("ascii")
            else:
                body["image"] = image.data
            case.body = body
            return case

        return st.tuples(st.integers(0, 3).map(lambda n: n == 3), st.sampled_from(images)
                         ).map(apply)

    return tweak


def captures_with_images(images: Sequence[SampleImage],
                         uids: Sequence[str] = ()) -> CaseTweak:
    """Most capture uploads are a real image with a capture document that matches it.

    Args:
        images: The images to send.
        uids: Capture uids to draw from (a uid sent again is a retry, or a conflict when it
            comes with another image); none: a new uid each time.
    """
    import hashlib
    import json

    def metadata(uid: str, image: SampleImage, pseudonym: str, decision: str) -> str:
        when = "2025-05-01T09:00:00+00:00"
        return json.dumps({
            "capture": {"uid": uid, "band": "white", "body_site": "back",
                        "device_id": "dermatoscope-1", "operator": "nurse",
                        "access_time": when, "capture_time": when, "saved_at": when,
                        "image_sha256": hashlib.sha256(image.data).hexdigest(),
                        "image_size": len(image.data), "image_format": image.format,
                        "width": image.width, "height": image.height},
            "session": {"ref": f"visit-{uid[:8]}", "operator": "nurse", "opened_at": when},
            "patient": {"pseudonym": pseudonym},
            "predictions": [{"model_version": "tiny-test-model", "decision": decision,
                             "class_probabilities": {"nv": 0.6, "mel": 0.4},
                             "group_probabilities": {"benign": 0.6, "skin_cancer": 0.4},
                             "referral": decision == "skin_cancer", "created_at": when}],
            "labels": [{"kind": "operator", "code": "nv", "author": "nurse",
                        "created_at": when}],
        })

    def tweak(case: Any) -> st.SearchStrategy[Any]:
        def apply(choice: tuple[bool, str, SampleImage, str, str]) -> Any:
            keep, uid, image, pseudonym, decision = choice
            if keep:
                return case
            case.body = {"metadata": metadata(uid, image, pseudonym, decision),
                         "image": image.data}
            return case

        uid = st.sampled_from(list(uids)) if uids else st.uuids().map(str)
        return st.tuples(st.integers(0, 3).map(lambda n: n == 3), uid,
                         st.sampled_from(images), st.sampled_from(["P-0001", "P-0002"]),
                         st.sampled_from(["benign", "skin_cancer", "indeterminate"])
                         ).map(apply)

    return tweak
