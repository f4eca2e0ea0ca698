"""The HTML report in a real browser (issue 16, item 3): the embedded demo writes its JSON and HTML
reports in one run; headless Chromium (the Debian package, driven by Playwright) opens the HTML from
file://. The counts on the page must equal the JSON report's, filtering to `fail` must show exactly
the failed flows, sorting must order the rows, and the page must make no request but its own file.

A screenshot of the page is kept: in $CSAUDIT_TEST_ARTEFACTS when set (.ci/run sets it to
.ci/artefacts), else in the test's tmp_path; the test prints where."""

import json
import os
import pathlib

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import find_program


def artefacts(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = pathlib.Path(os.environ.get("CSAUDIT_TEST_ARTEFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shown_ids(page) -> list[str]:
    return page.eval_on_selector_all("#flow-table tbody tr", "rows => rows.map(row => row.dataset.id)")


def column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#flow-table tbody tr td:nth-child({index})", "cells => cells.map(c => c.textContent)")


@pytest.mark.programs("chromium")
def test_the_demo_report_in_headless_chromium(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = cli("demo", "--json", str(tmp_path / "report.json"), "--html", str(tmp_path / "report.html"))
    assert result.exit_code == 1, result.stderr  # the demo's planted faults
    report = json.loads((tmp_path / "report.json").read_text())
    failed = sorted(f["id"] for f in report["flows"] if f["status"] == "fail")
    assert failed and len(report["flows"]) < 1000  # one page of the table holds them all
    url = (tmp_path / "report.html").resolve().as_uri()
    requests, problems = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_program("chromium"), args=["--no-sandbox"], timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.on("websocket", lambda socket: requests.append(socket.url))
            page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url, wait_until="load", timeout=30_000)

            for status, count in report["summary"].items():
                if status != "coverage":
                    assert page.text_content(f'#summary td[data-status="{status}"]').replace(",", "") == str(count), status
            coverage = report["summary"]["coverage"]
            assert f"Coverage: {coverage['verified']} of {coverage['flows']} flows verified" in page.text_content("#coverage")
            assert page.get_attribute("#shown", "data-count") == str(len(report["flows"]))
            assert sorted(shown_ids(page)) == sorted(f["id"] for f in report["flows"])

            page.select_option("#filter-status", "fail")
            assert sorted(shown_ids(page)) == failed
            assert set(column(page, 1)) == {"fail"}
            page.select_option("#filter-status", "")

            zone = report["zones"][0]["name"]
            page.select_option("#filter-zone", zone)
            assert sorted(shown_ids(page)) == sorted(f["id"] for f in report["flows"] if f["zone"] == zone)
            page.select_option("#filter-zone", "")

            page.click('#flow-table th[data-sort="port"]')
            ports = [int(p.split("/")[0].split("-")[0]) for p in column(page, 6)]
            assert ports == sorted(ports) and ports[0] < ports[-1]
            page.click('#flow-table th[data-sort="port"]')
            assert [int(p.split("/")[0].split("-")[0]) for p in column(page, 6)] == sorted(ports, reverse=True)
            page.click('#flow-table th[data-sort="source"]')
            sources = [f for f in column(page, 4)]
            assert sources == sorted(sources)
            assert page.get_attribute('#flow-table th[data-sort="source"]', "aria-sort") == "ascending"

            group = page.locator("details.group").first  # the largest failure group: its button filters the table
            rule, status = group.get_attribute("data-rule"), group.get_attribute("data-status")
            group.locator("button.show").click()
            expected = sorted(f["id"] for f in report["flows"] if f["rule"] == rule and f["status"] == status)
            assert sorted(shown_ids(page)) == expected
            page.select_option("#filter-status", "")
            page.select_option("#filter-rule", "")

            assert page.locator("svg.topology path.edge").count() > 10
            screenshot = artefacts(tmp_path) / "html-report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot of the HTML report: {screenshot}")
        finally:
            browser.close()
    assert requests == [url]  # the file itself; no host, no data: fetch, no socket
    assert problems == []  # no script error, nothing the Content-Security-Policy blocked
