"""The dashboard in Debian's chromium against a real server process: sign in, start runs from
the form built of the flow's inputs, watch them change live, open a step, cancel, retry, page
through the runs, compare versions, and fit a narrow screen. Each page is photographed."""

from __future__ import annotations

import json
import re
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from tests.ui.conftest import ANSWER_VALUE_BYTES, PASSWORD, USER, Dashboard, sign_in

with suppress(ImportError):  # when absent, the `dashboard` fixture says so (and fails under CI)
    from playwright.sync_api import Browser, Page, Request, Route, expect

RUN_URL = re.compile(r"#/runs/[0-9a-f-]{36}(\?.*)?$")
LIVE_SECONDS = 20  # a step of these flows takes milliseconds; this is the slow machine's margin


def expect_status(page: Page, status: str, where: str = "#run-status") -> None:
    expect(page.locator(where)).to_have_attribute(
        "data-status", status, timeout=LIVE_SECONDS * 1000
    )


def start_from_the_form(page: Page, dashboard: Dashboard, flow: str, **inputs: str) -> str:
    """Opens the flow's page, fills its start form and starts a run; the run's id."""
    page.goto(f"{dashboard.url}#/flows/{flow}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(flow)
    for name, value in inputs.items():
        page.get_by_label(name, exact=True).fill(value)
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(RUN_URL)
    return page.url.rsplit("/", 1)[1].split("?")[0]


def followed_without_reloading(page: Page) -> bool:
    return page.evaluate("window.sameDocument === true") is True


def test_signing_in_with_a_password(
    anonymous_page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    page = anonymous_page
    page.goto(dashboard.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.screenshot(path=screenshots / "sign-in.png")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Signed in as {USER}")).to_be_visible()
    session = next(c for c in page.context.cookies() if c["name"] == "fm_session")
    assert session["httpOnly"], "the page's scripts must not read the session"
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_run_started_from_the_form_shows_its_graph_steps_and_outputs(
    page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    page.goto(f"{dashboard.url}#/flows/Greet")
    expect(page.locator("#flow-graph [data-step='shout']")).to_be_visible()
    expect(page.get_by_label("times", exact=True)).to_have_attribute("type", "number")
    expect(page.get_by_label("name", exact=True)).to_have_attribute("required", "")
    page.screenshot(path=screenshots / "flow.png", full_page=True)

    start_from_the_form(page, dashboard, "Greet", name="Ada", times="2")

    expect_status(page, "completed")
    for step in ("words", "greet", "shout", "count"):
        expect_status(page, "completed", f"#run-graph [data-step='{step}']")
    expect(page.locator("#run-timeline .timeline-row")).to_have_count(4)
    expect(page.locator("#run-outputs")).to_contain_text("BONJOUR, ADA!")  # v2, the latest
    page.locator("#run-graph [data-step='greet']").focus()  # by keyboard, as a button is
    page.keyboard.press("Enter")
    expect(page.locator("#step-title")).to_have_text("Step greet")
    expect(page.locator("#step-outputs")).to_contain_text("Bonjour, Ada!")
    expect(page.locator("#step-inputs")).to_contain_text("${words.hello}, ${inputs.name}!")
    expect(page.locator("#step-detail .logs")).not_to_contain_text("Loading")
    page.screenshot(path=screenshots / "run.png", full_page=True)


def test_a_run_turns_green_live_when_its_gate_opens(page: Page, dashboard: Dashboard) -> None:
    start_from_the_form(page, dashboard, "Gate", directory=str(dashboard.directory), marker="live")
    expect_status(page, "running")
    expect_status(page, "running", "#run-graph [data-step='wait']")
    expect(page.locator("#cancel")).to_be_visible()
    expect(page.locator("#live-mode")).to_have_text("Live: following the run's events.")

    (dashboard.directory / "live").touch()

    expect_status(page, "completed")
    expect_status(page, "completed", "#run-graph [data-step='after']")
    expect(page.locator("#announce")).to_have_text("Run completed")
    expect(page.locator("#cancel")).to_have_count(0)
    assert followed_without_reloading(page)


def test_a_step_waiting_for_a_signal_shows_waiting_then_goes_on_live(
    page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    run_id = start_from_the_form(page, dashboard, "Approval")
    expect_status(page, "waiting", "#run-graph [data-step='answer']")
    expect_status(page, "running")
    page.screenshot(path=screenshots / "waiting.png", full_page=True)

    with dashboard.api() as http:
        sent = http.post(f"/runs/{run_id}/signals/answer", json={"yes": True})
    assert sent.status_code == 202, sent.text

    expect_status(page, "completed")
    expect_status(page, "completed", "#run-graph [data-step='answer']")
    assert followed_without_reloading(page)


def test_a_running_run_is_cancelled_from_its_page(
    page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    start_from_the_form(page, dashboard, "Gate", directory=str(dashboard.directory), marker="shut")
    expect_status(page, "running", "#run-graph [data-step='wait']")

    page.get_by_role("button", name="Cancel run").click()

    expect_status(page, "cancelled")
    expect(page.get_by_role("button", name="Retry run")).to_be_visible()
    page.screenshot(path=screenshots / "cancelled.png", full_page=True)
    (dashboard.directory / "shut").touch()  # the task itself may still be waiting: release it


def test_a_failed_run_is_retried_from_its_page(
    page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    start_from_the_form(page, dashboard, "Resumable", directory=str(dashboard.directory))
    expect_status(page, "failed")
    expect(page.locator("#run-error")).to_contain_text("the marker 'ready' is missing")
    expect(page.locator(".actions")).to_have_text("Retry runRuns of Resumable")
    page.get_by_role("button", name="Details of second").click()
    expect(page.locator("#step-error")).to_contain_text("missing")
    page.screenshot(path=screenshots / "failed.png", full_page=True)

    (dashboard.directory / "ready").touch()
    page.get_by_role("button", name="Retry run").click()

    expect_status(page, "completed")
    expect_status(page, "completed", "#run-graph [data-step='third']")
    expect(page.locator("#run-outputs")).to_contain_text('"second": 2')
    assert followed_without_reloading(page)


def test_a_value_too_large_for_the_answer_is_shown_whole_on_demand(
    page: Page, dashboard: Dashboard
) -> None:
    name = "Ada" + "a" * ANSWER_VALUE_BYTES
    with dashboard.api() as http:
        done = http.post("/flows/Greet/execute", json={"inputs": {"name": name}})
        assert done.status_code == 200, done.text
        run_id = done.json()["run_id"]
    page.goto(f"{dashboard.url}#/runs/{run_id}")
    expect(page.locator("#run-outputs")).to_contain_text("too large for the answer")

    page.locator("#run-outputs").get_by_role("button", name="Show it whole").first.click()

    expect(page.locator("#run-outputs pre")).to_contain_text(f"Bonjour, {name}!")


def test_runs_are_filtered_and_paged_by_the_server(
    page: Page, dashboard: Dashboard, screenshots: Path
) -> None:
    with dashboard.api() as http:
        for name in ("Bo", "Cy", "Di"):
            done = http.post("/flows/Greet/execute", json={"inputs": {"name": name}})
            assert done.status_code == 200, done.text
    runs = page.locator("#runs")  # its data-query: the API query the rows answer
    rows = runs.locator("tbody tr")
    page.goto(f"{dashboard.url}#/runs?limit=2")
    expect(runs).to_have_attribute("data-query", "limit=2")
    expect(rows).to_have_count(2)
    first_page = rows.evaluate_all("rows => rows.map(row => row.dataset.run)")

    page.get_by_role("link", name="Older runs").click()

    expect(runs).to_have_attribute("data-query", re.compile(r"^limit=2&cursor="))
    expect(rows).to_have_count(2)
    assert not set(first_page) & set(rows.evaluate_all("rows => rows.map(r => r.dataset.run)"))
    page.get_by_label("Flow", exact=True).fill("Greet")
    page.get_by_label("Status", exact=True).select_option("completed")
    page.get_by_role("button", name="Show").click()
    expect(runs).to_have_attribute("data-query", "limit=2&flow=Greet&status=completed")
    for text in rows.locator("td:nth-child(2)").all_inner_texts():
        assert text.startswith("Greet")
    for status in rows.locator(".badge").evaluate_all("bs => bs.map(b => b.dataset.status)"):
        assert status == "completed"
    page.screenshot(path=screenshots / "runs.png", full_page=True)


def test_two_versions_are_compared(page: Page, dashboard: Dashboard, screenshots: Path) -> None:
    page.goto(f"{dashboard.url}#/flows/Greet")
    expect(page.locator("#versions li")).to_have_count(2)
    expect(page.get_by_label("From")).to_have_value("1")
    expect(page.get_by_label("To")).to_have_value("2")

    page.get_by_role("button", name="Compare").click()

    expect(page.locator("#diff-output .removed")).to_contain_text("hello: Hello")
    expect(page.locator("#diff-output .added")).to_contain_text("hello: Bonjour")
    expect(page.locator("#diff-output figcaption")).to_contain_text("2 changed lines")
    expect(page.locator("#shares")).to_have_count(0)  # shared with nobody: said in words
    page.locator("#diff-output").scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "flow-diff.png", full_page=True)


def test_pages_fit_a_narrow_screen(
    browser: Browser, dashboard: Dashboard, screenshots: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        sign_in(page, dashboard)
        expect(page.locator("#runs tbody tr").first).to_be_visible()
        page.screenshot(path=screenshots / "narrow-runs.png", full_page=True)
        page.locator("#runs tbody tr a").first.click()
        expect(page.locator("#run-graph svg")).to_be_visible()
        page.screenshot(path=screenshots / "narrow-run.png", full_page=True)
        assert page.evaluate("window.innerWidth") == 390
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the page scrolls sideways; only its wide parts should"
    finally:
        context.close()


def sse(first_id: int, run_id: str, *events: dict[str, object]) -> str:
    """Server-sent events as GET /runs/{id}/events sends them (DESIGN.md section 8)."""
    at = datetime.now(UTC).isoformat()
    return "".join(
        f"id: {first_id + n}\ndata: {json.dumps({'run_id': run_id, 'at': at, **event})}\n\n"
        for n, event in enumerate(events)
    )


def test_a_run_is_followed_over_its_events_stream_and_resumed_after_a_cut(
    page: Page, dashboard: Dashboard
) -> None:
    """The events endpoint is stood in for here (the page must work before and after it
    lands): the first stream is cut after two events, the page reconnects with
    `Last-Event-ID` and finishes on the second stream's events, without polling the run."""
    asked_from: list[str | None] = []
    run_reads: list[str] = []
    page.on("request", lambda request: run_reads.append(request.url))

    def events(route: Route, request: Request) -> None:
        run_id = request.url.rsplit("/", 2)[1]
        asked_from.append(request.headers.get("last-event-id"))
        if len(asked_from) == 1:
            body = sse(1, run_id, {"type": "run", "status": "running"}, step("wait", "running"))
        else:  # the real run finishes first, so that its final state agrees with the events
            (dashboard.directory / "streamed").touch()
            finished(dashboard, run_id)
            body = sse(
                3,
                run_id,
                step("wait", "completed", outputs={"waited": True}),
                step("after", "running"),
                step("after", "completed", outputs={"done": True}),
                {"type": "run", "status": "completed", "outputs": {}},
            )
        route.fulfill(status=200, body=body, headers={"Content-Type": "text/event-stream"})

    page.route(re.compile(r"/runs/[0-9a-f-]{36}/events$"), events)
    run_id = start_from_the_form(
        page, dashboard, "Gate", directory=str(dashboard.directory), marker="streamed"
    )

    expect_status(page, "completed")
    expect_status(page, "completed", "#run-graph [data-step='after']")
    assert asked_from == [None, "2"]
    reads = [url for url in run_reads if url.endswith(f"/runs/{run_id}")]
    assert len(reads) <= 2, f"the page polled the run instead of following its events: {reads}"
    assert followed_without_reloading(page)


def step(step_id: str, status: str, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {"type": "step", "step_id": step_id, "task_index": 0}
    return event | {"attempt": 1, "status": status, **fields}


def finished(dashboard: Dashboard, run_id: str) -> None:
    deadline = time.monotonic() + LIVE_SECONDS
    with dashboard.api() as http:
        while http.get(f"/runs/{run_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, f"the run {run_id} did not finish"
            time.sleep(0.05)  # between polls of the API, with a deadline
