"""End to end in the Prefect UI: after a real migration run, headless Chromium opens the run's Artifacts tab,
follows the report artifact and finds the verdict and a migrated bucket on the page.

The session's Prefect test server (prefect_test_harness) serves the API only, never the UI, so this module
starts one `prefect server start` (own PREFECT_HOME in a temporary directory) to serve the UI, with the UI
pointed at the session's API (PREFECT_UI_API_URL): the migration runs through the CLI against the session's
server while the UI server starts, and the browser reads the run from there. The browser is Debian's
chromium + chromedriver (`make test` installs them when missing); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SUFFIX = "ui"  # not test_cli's "e2e" nor test_deployments' "deploy"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
STARTUP_TIMEOUT = 120
PAGE_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UiServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the UI server exited:\n" + self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no UI server after {STARTUP_TIMEOUT} s:\n" + self.log.read_text()[-3000:])


@pytest.fixture(scope="module")
def ui_server(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """A Prefect server for its UI, started (not yet ready) so that it boots while the migration runs."""
    home = tmp_path_factory.mktemp("prefect-ui-home")
    port = _free_port()
    env = {k: v for k, v in cli_env.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_UI_ENABLED="true",
        PREFECT_UI_API_URL=cli_env["PREFECT_API_URL"],  # the session's server, where the migration runs
    )
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--no-services",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield UiServer(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def migrated(
    ui_server: UiServer,
    cli_env: dict[str, str],
    moto_url: str,
    seeded_config: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """`python -m flows.migrate` on the e2e moto server, environment suffix "ui": returns its report."""
    work = tmp_path_factory.mktemp("ui-run")
    config = json.loads(seeded_config.read_text())
    config["environmentSuffix"] = SUFFIX
    (work / "migration-ui.json").write_text(json.dumps(config))
    report_path = work / "report.json"
    args = ["--config", str(work / "migration-ui.json"), "--endpoint-url", moto_url, "--report", str(report_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "flows.migrate", *args, "--validation-level", "quick"],
        cwd=ROOT,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


def _browser(profile_dir: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,2000",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_report_artifact_shows_the_verdict_in_the_prefect_ui(
    ui_server: UiServer, migrated: dict[str, Any], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key = f"migration-report-{migrated['migrationBatch']}-{SUFFIX}"
    bucket = migrated["resources"]["s3Buckets"][0]["name"]
    assert bucket == f"e2e-bucket-eu-20261128-{SUFFIX}"
    with get_client(sync_client=True) as client:
        (artifact, *_) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            limit=1,
        )
    assert artifact.flow_run_id is not None
    ui_server.wait_ready()

    driver = _browser(tmp_path / "chromium-profile")
    shot = tmp_path / "migration-report-artifact.png"
    try:
        wait = WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.25)
        # The run's page, Artifacts tab: the report is listed there under its key.
        driver.get(f"{ui_server.url}/runs/flow-run/{artifact.flow_run_id}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.p-tab#artifacts")).pop().click()
        link = wait.until(
            lambda d: [
                a for a in d.find_elements(By.XPATH, "//a[contains(@href, '/artifacts/artifact/')]") if key in a.text
            ]
        ).pop()
        link.click()
        # The artifact's page renders the markdown report: its title carries the verdict.
        title = f"Region migration {migrated['migrationBatch']} ({SUFFIX}): {migrated['verdict']['decision']}"
        wait.until(lambda d: title in d.find_element(By.TAG_NAME, "body").text and bucket in d.page_source)
        assert driver.current_url.endswith(f"/artifacts/artifact/{artifact.id}")
        headings = [h.text for h in driver.find_elements(By.TAG_NAME, "h1")]
        assert title in headings, headings
        assert migrated["verdict"]["decision"] == "GO"
        assert bucket in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.save_screenshot(str(shot))
        driver.quit()
    print(f"\nscreenshot of the report artifact in the Prefect UI: {shot}")
