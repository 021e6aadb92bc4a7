"""A small server-rendered review page at ``/review`` for dermatologists (no JavaScript).

It uses the same accounts, services and audit log as the API. The login token is kept in an
HttpOnly, SameSite=Strict cookie (Secure over HTTPS), which also keeps other sites from
posting reviews in the user's name.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.routes import Guard
from skinstation.engine.accounts.service import AccountPrincipal
from skinstation.engine.deps import Db, RowId
from skinstation.engine.errors import EngineError, UnauthorizedError
from skinstation.engine.review import service as review
from skinstation.engine.review.schemas import LesionOut
from skinstation.inference.taxonomy import load_taxonomy

router = APIRouter(prefix="/review", include_in_schema=False)
COOKIE = "skinstation_login"
HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.4em;vertical-align:top}"
         ".urgent{background:#fde8e8}img{max-width:160px}.error{color:#b00}")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _login_form(error: str = "") -> str:
    message = f"<p class='error'>{escape(error)}</p>" if error else ""
    return (f"{message}<form method='post' action='/review/login'>"
            "<label>Username <input name='username' autocomplete='username'></label> "
            "<label>Password <input name='password' type='password' "
            "autocomplete='current-password'></label> <button>Log in</button></form>")


def _who(request: Request, db: Db) -> AccountPrincipal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return accounts.authenticate(db, token)
    except UnauthorizedError:
        return None


@router.get("")
def queue_page(request: Request, db: Db) -> Response:
    """The queue, or the login form."""
    principal = _who(request, db)
    if principal is None:
        return _page("SkinStation review — log in", _login_form())
    try:
        items = review.review_queue(db, principal)
    except EngineError as error:
        return _page("SkinStation review", f"<p class='error'>{escape(str(error))}</p>", 403)
    options = "".join(f"<option>{escape(c)}</option>" for c in load_taxonomy().classes)
    rows = []
    for item in items:
        proposal = item.station_review
        proposed = ("" if proposal is None else
                    f"<br><em>reviewed at station, awaiting confirmation: "
                    f"{escape(proposal.code)} ({escape(proposal.reviewer)})</em>")
        groups = ", ".join(f"{escape(g)} {p:.2f}" for g, p in item.group_probabilities.items())
        history = _lesion_history(item.lesion)
        rows.append(
            f"<tr class='{'urgent' if item.urgent else ''}'>"
            f"<td><img alt='capture {item.capture_id}' src='/review/image/{item.capture_id}'></td>"
            f"<td>{escape(item.station)} / {escape(item.pseudonym)}<br>"
            f"{escape(item.body_site)}, {escape(item.band)}<br>"
            f"{item.capture_time:%Y-%m-%d %H:%M} UTC{history}</td>"
            f"<td>{escape(item.decision or '-')}{' (referral)' if item.referral else ''}"
            f"<br>{groups}</td><td>{escape(item.original_label or '-')}{proposed}</td>"
            f"<td><form method='post' action='/review/{item.capture_id}'>"
            f"<input name='note' placeholder='note' maxlength='2000'> "
            f"<button name='action' value='confirm'>Confirm</button> "
            f"<select name='code'>{options}</select> "
            f"<button name='action' value='correct'>Correct</button></form></td></tr>")
    table = ("<table><tr><th>Image</th><th>Case</th><th>Model</th><th>Original</th>"
             f"<th>Review</th></tr>{''.join(rows)}</table>" if rows else "<p>Queue empty.</p>")
    header = (f"<p>{escape(principal.display_name)} — {len(items)} case(s) waiting. "
              "<form method='post' action='/review/logout' style='display:inline'>"
              "<button>Log out</button></form></p>")
    return _page("SkinStation review queue", header + table)


def _lesion_history(lesion: LesionOut | None) -> str:
    """The case's lesion and its captures (oldest first), for the queue's case cell."""
    if lesion is None:
        return ""
    entries = "".join(
        f"<li{' class=current' if c.current else ''}>{c.capture_time:%Y-%m-%d} "
        f"{escape(c.decision or '-')}{' (referral)' if c.referral else ''} → "
        f"{escape(c.final_label or '-')} ({escape(c.review_status)})"
        f"{' — this case' if c.current else ''}</li>" for c in lesion.captures)
    where = ", ".join(escape(p) for p in (lesion.body_site, lesion.view, lesion.side) if p)
    return (f"<div class='lesion'>Lesion history ({where}), {len(lesion.captures)} "
            f"capture(s):<ol>{entries}</ol></div>")


@router.post("/login")
def login(request: Request, db: Db, guard: Guard, username: Annotated[str, Form()],
          password: Annotated[str, Form()]) -> Response:
    """Log in (throttled per address and username, as the API's login) and set the cookie."""
    try:
        result = guard.login_blocking(db, username, password,
                                      request.client.host if request.client else None)
    except EngineError as error:
        return _page("SkinStation review — log in", _login_form(str(error)), error.status_code)
    response = RedirectResponse("/review", status_code=303)
    response.set_cookie(COOKIE, result.token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/review",
                        max_age=int(db.settings.engine.session_hours * 3600))
    return response


@router.post("/logout")
def logout(request: Request, db: Db) -> Response:
    """End the login and clear the cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        accounts.logout(db, token)
    response = RedirectResponse("/review", status_code=303)
    response.delete_cookie(COOKIE, path="/review")
    return response


@router.get("/image/{capture_id}")
def image(capture_id: RowId, request: Request, db: Db) -> Response:
    """A case's image (audited)."""
    principal = _who(request, db)
    if principal is None:
        return Response(status_code=401)
    data, media_type = review.capture_image(db, principal, capture_id)
    return Response(data, media_type=media_type, headers=HEADERS)


@router.post("/{capture_id}")
def submit(capture_id: RowId, request: Request, db: Db, action: Annotated[str, Form()],
           code: Annotated[str | None, Form()] = None,
           note: Annotated[str | None, Form()] = None) -> Response:
    """Confirm or correct, then back to the queue."""
    principal = _who(request, db)
    if principal is None:
        return RedirectResponse("/review", status_code=303)
    try:
        review.submit_review(db, principal, capture_id, action,
                             None if action == "confirm" else code, note or None)
    except (EngineError, ValueError) as error:
        return _page("SkinStation review", f"<p class='error'>{escape(str(error))}</p>"
                     "<p><a href='/review'>Back to the queue</a></p>", 422)
    return RedirectResponse("/review", status_code=303)
