"""Every role's working page in a real browser: `finmed up --tiny` (server, worker and app) on a loopback port,
Playwright driving Debian's Chromium. An analyst uploads a CSV, scores it and sends flagged rows to review, reloads
the tab and is still signed in; a radiologist claims, edits and signs a demo draft; compliance claims and approves
the analyst's item, verifies the chain (a job the worker runs) and finds the events in the audit log. Screenshots of
each step go to var/screenshots/ for people to look at."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apps.auth import COOKIE
from tests.e2e.test_up_browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: `make browser` installs it"),
]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "var" / "screenshots"
PASSWORD = "browser-pass-1"


def _seed(tmp_path: Path) -> Path:
    """Users (analyst, radiologist, compliance) and a small CSV of transactions; `finmed up` fits the rest."""
    from core.auth.users import create_user
    from core.db.engine import get_engine, session_scope
    from core.db.migrate import upgrade
    from domains.finance.synthetic import generate

    engine = get_engine()
    upgrade(engine)
    with session_scope(engine) as session:
        for role in ("analyst", "radiologist", "compliance"):
            create_user(session, username=f"{role[:3]}1", role=role, password=PASSWORD)
    rows = generate(6, seed=2, days=5, fraud_rate=0.3).drop(columns=["is_fraud", "scheme"]).head(40)
    path = tmp_path / "transactions.csv"
    rows.to_csv(path, index=False)
    return path


def _sign_in(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {username}").wait_for(timeout=60_000)
    # The app writes its sign-in cookie from a script it injects after the rerun (apps/auth.py): a fresh load (goto)
    # before the script has run lands on the sign-in form. Wait for the cookie, so every later load is signed in.
    for _ in range(300):
        if any(c["name"] == COOKIE for c in page.context.cookies()):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the app did not write its sign-in cookie {COOKIE} within 30 s of signing in")


def _open(page, title: str) -> None:  # type: ignore[no-untyped-def]
    """Open a page through the sidebar, not a fresh load: right after sign-in the sign-in cookie may not be
    written yet, and a fresh load would then land on the sign-in form."""
    page.locator("section[data-testid='stSidebar']").get_by_text(title, exact=True).click()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(600)  # let Streamlit finish painting the rerun
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_roles_end_to_end(tmp_path: Path, tiny_model_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    csv_path = _seed(tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    finmed = shutil.which("finmed", path=str(Path(sys.executable).parent)) or "finmed"
    # --tiny: the bootstrap trains and exports the domains' default models on the tiny random model (it also
    # scores the finance demo batch and drafts the medical demo studies the radiologist signs below), and
    # `finmed up` runs its own job worker beside the server and the app.
    # FINMED_BASE_MODEL: the base the finance page's in-process LLM loads (the tiny model, not the default).
    env = {**os.environ, "FINMED_BASE_MODEL": str(tiny_model_dir)}
    app = subprocess.Popen(
        [finmed, "up", "--tiny", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert app.stdout is not None
        lines: list[str] = []
        while not any("app: ready at http" in line for line in lines):
            line = app.stdout.readline()
            assert line, f"finmed up ended before printing its URL: {''.join(lines)}"
            lines.append(line)
        url = re.search(r"app: ready at (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        wait_healthy(url, app)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            analyst = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            _sign_in(analyst, url, "ana1")
            assert "Review queue" not in analyst.inner_text("section[data-testid='stSidebar']")
            analyst.goto(f"{url}/finance", wait_until="domcontentloaded")
            analyst.get_by_role("heading", name="Risk scoring").wait_for(timeout=60_000)
            analyst.locator("input[type=file]").set_input_files(str(csv_path))
            analyst.get_by_role("button", name="Validate and score").click(timeout=60_000)
            try:
                analyst.get_by_text(re.compile(r"rows scored\.")).wait_for(timeout=60_000)
            except Exception:
                _shot(analyst, "1-analyst-scoring-failed")  # what the page showed instead
                raise
            # the riskiest transaction opens first (the table is sorted by level): its detail and similar cases
            analyst.get_by_text("Similar labelled cases").wait_for(timeout=60_000)
            assert analyst.get_by_text(re.compile(r"^Level [0-5]")).count() >= 1
            # Streamlit scrolls inside its own container, so a full-page shot stops at the viewport: scroll first
            analyst.get_by_text("Similar labelled cases").scroll_into_view_if_needed()
            _shot(analyst, "1-analyst-scored")
            analyst.get_by_role("button", name="Store and route to review").click()
            analyst.get_by_text("queued for review").wait_for(timeout=60_000)
            _shot(analyst, "2-analyst-sent-to-review")
            # The URL of another role's page leads to the analyst's default page, not the page.
            for path, heading in (("compliance", "Review queue"), ("medical", "Radiology worklist"),
                                  ("operations", "Operations")):  # fmt: skip
                analyst.goto(f"{url}/{path}", wait_until="domcontentloaded")
                analyst.get_by_role("heading", name="Status").wait_for(timeout=60_000)
                assert analyst.get_by_role("heading", name=heading).count() == 0, path
            # A reload keeps the sign-in (signed session cookie).
            analyst.reload(wait_until="domcontentloaded")
            analyst.get_by_text("Signed in as ana1").wait_for(timeout=60_000)
            assert analyst.get_by_role("textbox", name="Password").count() == 0
            analyst.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)
            _shot(analyst, "3-analyst-after-reload")
            analyst.get_by_role("button", name="Sign out").click()
            analyst.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
            analyst.reload(wait_until="domcontentloaded")
            analyst.get_by_role("button", name="Sign in").wait_for(timeout=30_000)  # signed out stays signed out

            radiologist = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
            _sign_in(radiologist, url, "rad1")
            _open(radiologist, "Radiology worklist")
            try:  # the first visit loads the finding labeler (spaCy) for the highlights
                radiologist.get_by_role("heading", name="Radiology worklist").wait_for(timeout=120_000)
                radiologist.get_by_text(re.compile(r"^Draft \d+: ")).wait_for(timeout=120_000)  # the oldest opens
            except Exception:
                _shot(radiologist, "4-radiologist-worklist-failed")
                raise
            radiologist.get_by_role("button", name="Claim").click()
            radiologist.get_by_text("Claimed: the draft is yours").wait_for(timeout=60_000)
            editor = radiologist.get_by_label("Impression (edit before signing)")
            editor.fill("No acute cardiopulmonary abnormality. Edited by the radiologist.")
            editor.press("Control+Enter")  # commit the edit before the click
            radiologist.wait_for_timeout(800)
            radiologist.get_by_role("button", name="Sign", exact=True).click()
            radiologist.get_by_text(re.compile(r"Signed report \d+ \(ROUGE-L vs draft")).wait_for(timeout=60_000)
            _shot(radiologist, "4-radiologist-signed")

            reviewer = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _sign_in(reviewer, url, "com1")
            _open(reviewer, "Review queue")
            reviewer.get_by_role("heading", name="Review queue").wait_for(timeout=60_000)
            reviewer.get_by_role("button", name="Claim next item").click()
            reviewer.get_by_text("Prompt as sent").wait_for(timeout=60_000)
            _shot(reviewer, "5-compliance-claimed")
            reviewer.get_by_role("button", name="Approve").click()
            reviewer.get_by_text(re.compile(r"Item \d+: approved\.")).wait_for(timeout=60_000)
            _shot(reviewer, "6-compliance-approved")
            _open(reviewer, "Audit trail")
            reviewer.get_by_role("heading", name="Audit trail").wait_for(timeout=60_000)
            reviewer.get_by_role("button", name="Verify the chain now").click()
            reviewer.get_by_text("Audit chain verified").wait_for(timeout=60_000)
            reviewer.get_by_label("Event (e.g. review.decided, or review. for all review events)").fill("review.")
            reviewer.keyboard.press("Enter")
            reviewer.wait_for_timeout(1500)
            _shot(reviewer, "7-compliance-audit")
            browser.close()
    finally:
        app.send_signal(signal.SIGINT)  # `finmed up` stops its children
        try:
            app.wait(timeout=60)
        except subprocess.TimeoutExpired:
            app.kill()
    from sqlalchemy import select

    from core.audit.tables import AuditEvent
    from core.db.engine import get_engine, session_scope

    with session_scope(get_engine()) as session:
        actions = {(e.actor, e.action) for e in session.scalars(select(AuditEvent))}
    for needed in (
        ("ana1", "session.started"),
        ("ana1", "review.routed"),
        ("ana1", "session.ended"),
        ("rad1", "medical.report_signed"),
        ("com1", "review.claimed"),
        ("com1", "review.decided"),
        ("com1", "job.submitted"),
    ):
        assert needed in actions, needed
