"""The report in headless Chromium, offline: no console errors, every chart drawn, a screenshot."""

import os
import shutil
from pathlib import Path

import pytest
from report_plan import fixture_plan, fixture_store

from planner.demo import run_demo
from planner.report import write_report

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
wait = pytest.importorskip("selenium.webdriver.support.wait")

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()),
    None,
)
CHROMEDRIVER = next(
    (
        p
        for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "")
        if p and Path(p).exists()
    ),
    None,
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--window-size=1100,1500",
)
RENDER_TIMEOUT_S = 30
NARROW_PX = 800
# Per chart: its SVG's right edge, its container's right edge, and the visible text labels
# whose boxes intersect (Vega hides labels it thins out with opacity 0; those do not count).
NARROW_LAYOUT = """return Array.from(document.querySelectorAll('[data-chart]')).map(el => {
  const svg = el.querySelector('svg');
  const shown = t => t.textContent.trim() && getComputedStyle(t).opacity !== '0'
    && !t.closest('[opacity="0"]');
  const boxes = Array.from(el.querySelectorAll('svg text')).filter(shown)
    .map(t => [t.textContent, t.getBoundingClientRect()]);
  const hits = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i][1], b = boxes[j][1];
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 0 && h > 0) hits.push(boxes[i][0] + ' / ' + boxes[j][0]);
  }
  return [el.dataset.chart, svg.getBoundingClientRect().right,
          el.getBoundingClientRect().right, hits];
});"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium needs the Debian packages chromium and chromium-driver "
    "(/usr/bin/chromium, /usr/bin/chromedriver)",
)


@pytest.fixture
def driver(tmp_path: Path):
    """A headless Chromium with a fresh profile, network cut off, browser log captured."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_network_conditions(
        offline=True, latency=0, download_throughput=0, upload_throughput=0
    )
    yield browser
    browser.quit()


@pytest.fixture(params=["fixture", "demo"])
def report(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """The report of the fixture plan, and the one `planner demo` writes from real stages."""
    if request.param == "demo":
        demo = run_demo(tmp_path / "demo")
        return demo.report, demo.charts
    db = fixture_store(tmp_path / "store.duckdb")
    result = write_report(fixture_plan(db), tmp_path / "report.html")
    return result.html, result.charts


def test_report_renders_offline_without_errors(
    driver, report, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every chart container holds a non-empty SVG/canvas and the console has no errors."""
    html, charts = report
    driver.get(html.resolve().as_uri())
    wait.WebDriverWait(driver, RENDER_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.body.dataset.chartsDone === 'true'")
    )
    drawn = driver.execute_script(
        """return Array.from(document.querySelectorAll('[data-chart]')).map(el => {
             const svg = el.querySelector('svg'), canvas = el.querySelector('canvas');
             const marks = svg ? svg.querySelectorAll('path, rect, line, text').length : 0;
             const box = (svg || canvas) ? (svg || canvas).getBoundingClientRect() : {width: 0};
             return [el.dataset.chart, marks > 0 || !!canvas, box.width];
           });"""
    )
    assert sorted(c for c, _, _ in drawn) == sorted(charts)
    assert all(ok and width > 100 for _, ok, width in drawn), drawn
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    driver.set_window_size(NARROW_PX, 1500)
    page, window = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert page <= window, "the page scrolls sideways at 800 px"
    layout = driver.execute_script(NARROW_LAYOUT)
    assert [c for c, svg_right, box_right, _ in layout if svg_right > box_right + 0.5] == []
    assert {c: hits for c, _, _, hits in layout if hits} == {}
    driver.save_screenshot(str(tmp_path / "report-narrow.png"))
    driver.set_window_size(1100, 1500)
    shot = tmp_path / "report-page-one.png"
    assert driver.save_screenshot(str(shot))
    full = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1100, full + 100)
    driver.save_screenshot(str(tmp_path / "report-full.png"))
    if os.environ.get("PLANNER_SCREENSHOT_DIR"):
        target = Path(os.environ["PLANNER_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        prefix = request.node.callspec.params["report"]
        for name in ("report-page-one.png", "report-full.png", "report-narrow.png"):
            shutil.copy(tmp_path / name, target / f"{prefix}-{name}")
