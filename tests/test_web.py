"""The web view in a real browser (Chromium, through Playwright) against a real
daemon in this process and the emulator: what the page shows is what the API
reports, it changes as the run goes on without a reload, a job's log arrives
line by line, the token form works, a failure's reason and a tuning job's
trials are shown.

Playwright is started inside each test, on the test's event loop, so the
daemon goes on serving while the browser waits: nothing here blocks the loop.
With ``SMRUN_WEB_SCREENSHOT=/some/file.png`` the log test also saves its
screenshot of a live run there.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from smrun.emulator import Emulator
from tests.daemon_helpers import TOKEN, DaemonHandle, daemon_on, get, submit, wait_run
from tests.test_daemon_restart import LINE, manifest, training_job

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 30_000  # the longest any one wait may take (ms): a hung page fails, it doesn't stall
# the order a job's state moves in (every outcome is last)
RANK = {"waiting": 0, "running": 1}
FINAL = 2


@dataclass
class Browsing:
    browser: Browser
    base: str
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    allowed: tuple[re.Pattern[str], ...] = ()

    async def page(self, fragment: str = "") -> Page:
        """A page (in a fresh context: its own sessionStorage) at ``/`` + ``fragment``."""
        context = await self.browser.new_context(viewport={"width": 1360, "height": 900})
        self.contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda message: self._console(message.type, message.text))
        page.on("pageerror", lambda problem: self.problems.append(f"pageerror: {problem}"))
        await page.goto(self.base + "/" + fragment)
        return page

    def _console(self, kind: str, text: str) -> None:
        if kind == "error" and not any(p.search(text) for p in self.allowed):
            self.problems.append(f"console.error: {text}")


@asynccontextmanager
async def browsing(daemon: DaemonHandle, *,
                   allowed: tuple[str, ...] = ()) -> AsyncIterator[Browsing]:
    """Chromium for the daemon's page; on a clean exit, asserts that no page
    logged an error or threw. Closed before the daemon stops, so no request
    of the page meets a daemon that is gone."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: the web view's tests need it "
                    "(.ci/run installs the `chromium` package)")
    async with async_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="smrun-web-") as profile:
            try:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                    env={**os.environ, "HOME": profile, "XDG_CONFIG_HOME": profile,
                         "XDG_CACHE_HOME": profile},
                )
            except PlaywrightError as problem:
                pytest.fail(f"Chromium ({CHROMIUM}) does not start: {problem}\n"
                            "(.ci/run installs the `chromium` package)")
            seen = Browsing(browser, daemon.url, allowed=tuple(re.compile(a) for a in allowed))
            try:
                yield seen
            finally:
                for context in seen.contexts:
                    await context.close()
                await browser.close()
    assert seen.problems == []


async def api_states(session: aiohttp.ClientSession, daemon: DaemonHandle,
                     run_id: str) -> dict[str, str]:
    status, run = await get(session, daemon, f"/v1/runs/{run_id}")
    assert status == 200, run
    return {job["job"]: job["state"] for job in run["jobs"]}


async def wait_api(session: aiohttp.ClientSession, daemon: DaemonHandle, run_id: str,
                   job: str, state: str) -> None:
    """Until the API reports ``job`` in ``state`` (polling, on the loop)."""
    with anyio.fail_after(WAIT_MS / 1000):
        while (await api_states(session, daemon, run_id)).get(job) != state:
            await anyio.sleep(0.05)


async def page_states(page: Page) -> dict[str, str]:
    return dict(await page.eval_on_selector_all(
        "#tl-rows [data-job]", "rows => rows.map(r => [r.dataset.job, r.dataset.state])"))


def rank(state: str) -> int:
    return RANK.get(state, FINAL)


async def wait_rows(page: Page, count: int) -> None:
    await page.wait_for_selector('body[data-ready="1"]', state="attached")
    await page.wait_for_function(
        "n => document.querySelectorAll('#tl-rows [data-job][data-state]').length === n", arg=count)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1360, 900)
    # a blank or nearly blank page of this size compresses to a few kilobytes
    assert len(data) > 40_000, len(data)


# -- 1. the page shows a running run's jobs -----------------------------------


async def test_the_page_shows_each_job_of_a_running_run_in_the_state_the_api_reports(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("prepare", duration=3, lines=3),
                    training_job("train", duration=1, lines=2) + "    after: [prepare]\n",
                    training_job("side", duration=2.5, lines=2))
    async with daemon_on(emulator, tmp_path / "state") as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon) as browser:
        status, run = await submit(session, daemon, text, run_id="web-states")
        assert status == 201, run
        await wait_api(session, daemon, "web-states", "prepare", "running")
        page = await browser.page("#run=web-states")
        await wait_rows(page, 3)
        # The page follows the store a moment behind the API: compare once the
        # API answered the same twice around a look at the page, mid-run.
        with anyio.fail_after(WAIT_MS / 1000):
            while True:
                before = await api_states(session, daemon, "web-states")
                shown = await page_states(page)
                after = await api_states(session, daemon, "web-states")
                assert set(shown) == set(before) == {"prepare", "train", "side"}, shown
                for job, state in shown.items():
                    # behind the API's later answer maybe, never ahead of it (the
                    # daemon writes a job's events and its row in one transaction)
                    assert rank(state) <= rank(after[job]), (job, before, shown, after)
                    if rank(state) == FINAL:
                        assert state == after[job], (job, shown, after)
                if before == after == shown:
                    break
                await anyio.sleep(0.05)
        # `train` needs `prepare`, which runs for 3 s: it waits, on the page too
        assert shown["prepare"] == "running" and shown["train"] == "waiting", shown
        train = page.locator('#tl-rows [data-job="train"]')
        assert await train.locator(".seg-waiting").count() == 1
        assert await train.locator(".seg-progress, .seg-created").count() == 0
        assert await page.locator('#tl-rows [data-job="prepare"] .seg-progress').count() >= 1
        listed = page.locator('#runs-list li[data-run-id="web-states"]')
        assert await listed.get_attribute("data-run-status") in ("pending", "running")
        await page.screenshot(path=tmp_path / "running.png")
        assert_png(tmp_path / "running.png")
        # and the run goes on to the end, which the page shows too
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#tl-rows [data-job]')]"
            ".every(r => r.dataset.state === 'Succeeded')")
        ended = await wait_run(session, daemon, "web-states")
        assert ended["status"] == "succeeded"
        await page.wait_for_selector(
            '#runs-list li[data-run-id="web-states"][data-run-status="succeeded"]',
            state="attached")


# -- 2. a status change appears without a reload ------------------------------


async def test_a_running_job_turns_succeeded_on_the_page_without_a_reload(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("fit", duration=3, lines=4))
    async with daemon_on(emulator, tmp_path / "state") as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon) as browser:
        status, run = await submit(session, daemon, text, run_id="web-live")
        assert status == 201, run
        page = await browser.page("#run=web-live")
        loads: list[str] = []
        page.on("load", lambda _page: loads.append("load"))
        row = page.locator('#tl-rows [data-job="fit"]')
        await page.wait_for_selector('#tl-rows [data-job="fit"][data-state="running"]',
                                     state="attached")
        running_status = await row.locator(".job-status").text_content()
        assert running_status and running_status != "Completed"
        await page.evaluate("() => { window.__marker = 1; }")
        await page.wait_for_selector('#tl-rows [data-job="fit"][data-state="Succeeded"]',
                                     state="attached")
        assert await row.locator(".job-status").text_content() == "Completed"
        assert await row.locator(".seg-ended.end-ok").count() == 1
        assert await page.evaluate("() => window.__marker") == 1  # the same document
        assert loads == []
        assert (await api_states(session, daemon, "web-live"))["fit"] == "Succeeded"
        await page.wait_for_selector('#run-header[data-run-status="succeeded"]',
                                     state="attached")


# -- 3. the log pane receives lines -------------------------------------------


async def test_the_log_pane_receives_each_line_of_the_job_once(
    emulator: Emulator, tmp_path: Path,
) -> None:
    lines, instances = 15, 2
    total = lines * instances
    text = manifest(training_job("prepare", duration=0.5, lines=3),
                    training_job("train", duration=5, lines=lines, instances=instances)
                    + "    after: [prepare]\n",
                    training_job("evaluate", duration=0.5, lines=2) + "    after: [train]\n")
    async with daemon_on(emulator, tmp_path / "state") as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon) as browser:
        status, run = await submit(session, daemon, text, run_id="web-logs")
        assert status == 201, run
        page = await browser.page("#run=web-logs")
        await wait_rows(page, 3)
        await page.locator('#tl-rows [data-job="train"]').click()
        assert "job=train" in await page.evaluate("() => location.hash")
        await page.wait_for_selector("#job-detail:not([hidden])")
        # a screenshot of the live run: the timeline, and the log filling in
        await page.wait_for_function(
            "n => document.querySelectorAll('#log-pane .log-line').length >= n", arg=lines // 2)
        assert (await api_states(session, daemon, "web-logs"))["train"] == "running"
        shot = tmp_path / "logs.png"
        await page.screenshot(path=shot)
        assert_png(shot)
        if os.environ.get("SMRUN_WEB_SCREENSHOT"):
            Path(os.environ["SMRUN_WEB_SCREENSHOT"]).write_bytes(shot.read_bytes())
        await page.wait_for_function(
            "n => document.querySelectorAll('#log-pane .log-line').length >= n", arg=total)
        # the stream ended (the job did): nothing more is coming
        await page.wait_for_function(
            "() => document.querySelector('#log-status').textContent === 'complete'")
        messages = await page.locator("#log-pane .log-line .log-msg").all_text_contents()
        instances_shown = await page.eval_on_selector_all(
            "#log-pane .log-line", "lines => lines.map(l => l.dataset.instance)")
    assert len(messages) == total
    assert len(set(messages)) == total, "a line shown twice"
    seen = set()
    for message, instance in zip(messages, instances_shown, strict=True):
        found = LINE.match(message)
        assert found, message
        assert int(found["total"]) == lines
        assert instance.startswith(found["instance"]), (instance, message)
        seen.add((found["instance"], int(found["n"])))
    expected = {(f"algo-{i}", n) for i in range(1, instances + 1) for n in range(1, lines + 1)}
    assert seen == expected


# -- 4. the token -------------------------------------------------------------


async def test_the_token_form_and_a_token_in_the_url_both_open_a_daemon_that_needs_one(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("one", duration=0.5, lines=1))
    # the page's requests without the token (or with a wrong one) get a 401, which
    # Chromium logs as a console error: those, and only those, are expected
    refused = (r"status of 401 \(Unauthorized\)",)
    async with daemon_on(emulator, tmp_path / "state", token=TOKEN) as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon, allowed=refused) as browser:
        status, run = await submit(session, daemon, text, run_id="web-token")
        assert status == 201, run
        async with session.get(f"{daemon.url}/v1/runs") as response:
            assert response.status == 401  # the token is enforced

        page = await browser.page()
        await page.wait_for_selector("#token-overlay:not([hidden])")
        assert await page.locator('#runs-list li[data-run-id]').count() == 0
        assert await page.evaluate("() => document.body.dataset.ready") is None
        # a wrong token is refused, and the form asks again
        await page.fill("#token-input", "not-the-token-at-all")
        await page.click("#token-submit")
        await page.wait_for_function(
            "() => !document.querySelector('#token-overlay').hidden"
            " && /refused/.test(document.querySelector('#token-note').textContent)")
        await page.fill("#token-input", TOKEN)
        await page.click("#token-submit")
        await page.wait_for_selector('body[data-ready="1"]', state="attached")
        await page.wait_for_selector('#runs-list li[data-run-id="web-token"]')
        assert await page.locator("#token-overlay").is_hidden()

        # another browser (its own storage) with the token in the link
        linked = await browser.page(f"#token={TOKEN}&run=web-token")
        await linked.wait_for_selector('body[data-ready="1"]', state="attached")
        await linked.wait_for_selector('#runs-list li[data-run-id="web-token"]')
        await linked.wait_for_selector('#tl-rows [data-job="one"]')
        assert await linked.locator("#token-overlay").is_hidden()
        # the token left the address bar (and history); the rest of the link stayed
        assert await linked.evaluate("() => location.hash") == "#run=web-token"


# -- 5. a failed job's reason -------------------------------------------------


async def test_a_failed_jobs_reason_is_shown_in_its_detail_pane(
    emulator: Emulator, tmp_path: Path,
) -> None:
    reason = "AlgorithmError: the web test's job ran out of patience"
    text = manifest(
        training_job("doomed", duration=1, lines=2)
        + '        - {Key: "smrun:emulator:outcome", Value: "Failed"}\n'
        + f'        - {{Key: "smrun:emulator:failure-reason", Value: "{reason}"}}\n',
        training_job("fine", duration=0.5, lines=1))
    async with daemon_on(emulator, tmp_path / "state") as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon) as browser:
        status, run = await submit(session, daemon, text, run_id="web-failed")
        assert status == 201, run
        page = await browser.page("#run=web-failed&job=doomed")
        await page.wait_for_selector('#tl-rows [data-job="doomed"][data-state="Failed"]',
                                     state="attached")
        failure = page.locator("#job-detail #job-failure")
        await failure.wait_for()
        shown = await failure.text_content()
        status, job = await get(session, daemon, "/v1/runs/web-failed/jobs/doomed")
        assert status == 200 and job["state"] == "Failed"
        assert reason in job["failure_reason"]
        assert shown == f"Failed: {job['failure_reason']}"
        assert await page.locator('#tl-rows [data-job="doomed"] .seg-ended.end-bad').count() == 1
        # the other job's detail has no failure to show
        await page.locator('#tl-rows [data-job="fine"]').click()
        await page.wait_for_selector('#job-info .job-title[title="fine"]')
        assert await page.locator("#job-failure").count() == 0


# -- 6. a tuning job's trials -------------------------------------------------


TUNING = """
  - name: tune
    kind: tuning
    request:
      HyperParameterTuningJobConfig:
        Strategy: Bayesian
        HyperParameterTuningJobObjective: {Type: Minimize, MetricName: "validation:loss"}
        ResourceLimits: {MaxNumberOfTrainingJobs: 5, MaxParallelTrainingJobs: 3}
        ParameterRanges:
          IntegerParameterRanges: [{Name: epochs, MinValue: "1", MaxValue: "10"}]
          CategoricalParameterRanges: [{Name: optimizer, Values: [sgd, adam]}]
      TrainingJobDefinition:
        StaticHyperParameters: {batch_size: "32"}
        AlgorithmSpecification:
          TrainingImage: 123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1
          TrainingInputMode: File
          MetricDefinitions: [{Name: "validation:loss", Regex: "loss=(\\\\S+)"}]
        OutputDataConfig: {S3OutputPath: "s3://bucket/hpo/"}
        ResourceConfig: {InstanceType: ml.m5.large, InstanceCount: 1, VolumeSizeInGB: 10}
        StoppingCondition: {MaxRuntimeInSeconds: 3600}
      Tags:
        - {Key: "smrun:emulator:child-duration", Value: "0.5,0.8"}
        - {Key: "smrun:emulator:log-lines", Value: "2"}
"""


async def test_a_tuning_jobs_chart_has_one_point_per_trial(
    emulator: Emulator, tmp_path: Path,
) -> None:
    async with daemon_on(emulator, tmp_path / "state") as daemon, \
            aiohttp.ClientSession() as session, browsing(daemon) as browser:
        status, run = await submit(session, daemon, manifest(TUNING), run_id="web-tuning")
        assert status == 201, run
        page = await browser.page("#run=web-tuning&job=tune")
        await page.wait_for_selector('#tl-rows [data-job="tune"][data-state="Succeeded"]',
                                     state="attached")
        await page.wait_for_selector("#trials-section:not([hidden])")
        # the page asks for the trials again once the job ended: that answer is final
        await page.wait_for_function(
            "() => document.querySelectorAll('#trials-chart circle.trial').length === 5")
        status, body = await get(session, daemon, "/v1/runs/web-tuning/jobs/tune/trials")
        assert status == 200, body
        names = await page.eval_on_selector_all(
            "#trials-chart circle.trial", "dots => dots.map(d => d.dataset.trial)")
        assert sorted(names) == sorted(t["name"] for t in body["trials"])
        assert all(t["status"] == "Completed" for t in body["trials"])
        best = min(body["trials"], key=lambda t: t["value"])  # the objective is Minimize
        assert await page.locator("#trials-chart circle.trial.best").count() == 1
        assert await page.locator("#trials-chart circle.best").get_attribute(
            "data-trial") == best["name"]
