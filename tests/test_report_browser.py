"""Reports opened in headless Chromium, as a reader would open them: built from a real small
run, no JavaScript errors, every plot drawn, tables sortable, hostile strings inert."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from hpo.errors import SpecError
from hpo.experiment import load_experiment
from hpo.report import build_report
from hpo.report.compare import build_compare
from hpo.runner import run
from hpo.runner.collect import refresh
from tests.conftest import write_spec

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
EVIL = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"

SPEC = """\
name: browser
description: lr x L2 on a tiny sample
trainable: mlp
dataset: {name: mnist_sample, train_size: 1000, val_size: 500}
metric: val_acc
searcher: {name: grid}
scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
budget: {max_epochs: 3}
params:
  lr: {grid: [1.0, 0.1, 0.01]}
  weight_decay: {grid: [0.01, 0.0001]}
  hidden: [32]
  batch_size: 100
"""


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium / chromedriver missing in CI (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--window-size=1280,2000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, ray_session):
    tmp = tmp_path_factory.mktemp("browser")
    exp = load_experiment(write_spec(tmp, SPEC))
    return run(exp, storage=tmp / "runs", dashboard=False, verbose=0).run_dir


def open_page(driver, path: Path) -> list[dict]:
    driver.get_log("browser")  # drop earlier entries
    driver.get(path.resolve().as_uri())
    driver.implicitly_wait(0)
    return driver.get_log("browser")


def plots_drawn(driver) -> tuple[int, int]:
    divs = driver.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".filter(d => d.querySelector('svg.main-svg') && d._fullData && d._fullData.length).length")
    return divs, drawn


def test_report_renders_without_errors_and_sorts(browser, real_run, tmp_path):
    out = build_report(real_run, tmp_path / "r.html")
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    # heatmap, curves, history, and Optuna's parallel/importance/slice/contour
    assert divs >= 6 and drawn == divs
    assert browser.find_element("id", "grid-table") and browser.find_element("id", "audit-table")
    # axes follow the search space: the log-spaced lr grid on a log axis in the slice plot; no
    # contour over a complete grid (the heatmap shows it), and the grid's exact importance
    axes = browser.execute_script(
        "const out = {}; for (const d of document.querySelectorAll('.plotly-graph-div')) {"
        " for (const [k, a] of Object.entries(d._fullLayout)) if (/^[xy]axis/.test(k) && a.title)"
        " out[d.id + '.' + (a.title.text || '')] = a.type; } return out;")
    slice_id = next(h.find_element("xpath", "following::div[contains(@class, 'plotly-graph-div')]").get_attribute("id")
                    for h in browser.find_elements("css selector", "h3") if h.text == "Slice plot")
    assert axes[f"{slice_id}.lr"] == "log", axes
    assert "Contour plot" not in [h.text for h in browser.find_elements("css selector", "h3")]
    assert browser.find_element("id", "importance-table")
    assert "<script src" not in out.read_text()  # plotly.js is inline, no CDN
    # sort the results table by its best_val_acc column, both ways
    table = browser.find_element("id", "results-table")
    headers = [th.text for th in table.find_elements("css selector", "th")]
    col = headers.index("best_val_acc")

    def column() -> list[float]:
        cells = table.find_elements("css selector", f"tbody tr td:nth-child({col + 1})")
        return [float(c.get_attribute("data-v")) for c in cells]

    table.find_elements("css selector", "th")[col].click()
    assert column() == sorted(column())
    table.find_elements("css selector", "th")[col].click()
    assert column() == sorted(column(), reverse=True)


def test_hostile_strings_are_shown_not_run(browser, real_run, tmp_path):
    copy = tmp_path / "evil"
    shutil.copytree(real_run, copy)
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    spec["description"] = EVIL  # (a name must be a folder's: a spec.yaml naming EVIL is not read)
    spec["params"]["activation"] = {"grid": ["relu", EVIL]}
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    for i, d in enumerate(sorted(copy.glob("trial_*"))):
        p = json.loads((d / "params.json").read_text())
        p["activation"] = EVIL if i % 2 else "relu"
        (d / "params.json").write_text(json.dumps(p))
    out = build_report(copy, tmp_path / "evil.html")
    logs = open_page(browser, out)
    assert browser.execute_script("return window.__pwned") is None
    assert EVIL in browser.find_element("css selector", "p.desc").text
    assert "<script>window.__pwned" not in out.read_text()
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs


def test_compare_page(browser, real_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(real_run, other)
    out = build_compare([real_run, other], tmp_path / "cmp.html")
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    assert divs == 2 and drawn == 2  # best so far, and the EDF of the trial values
    edf = browser.execute_script("const d = document.getElementById('edf');"
                                 " return [d._fullData.length, d._fullLayout.xaxis.title.text];")
    assert edf == [2, "best_val_acc"]
    rows = browser.find_elements("css selector", "#compare-table tbody tr")
    assert len(rows) == 2


def test_report_of_an_interrupted_run(real_run, tmp_path):
    # a run folder whose driver died: no tables, no events for some trials
    copy = tmp_path / "partial"
    shutil.copytree(real_run, copy)
    for f in ("trials.csv", "trials.parquet", "history.parquet"):
        (copy / f).unlink()
    lines = (copy / "events.jsonl").read_text().splitlines()
    (copy / "events.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(SpecError, match="no results tables here yet"):
        build_report(copy, tmp_path / "partial.html")  # the report reads tables only
    refresh(copy)  # what `hpo report` does first: the collector writes them
    html = build_report(copy, tmp_path / "partial.html").read_text()
    assert "did not finish (interrupted or still running)" in html
    assert (copy / "report.html").read_text() == html  # the run folder's own copy


def without_trial_folders(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of a finished run folder with Ray's trial folders and the event log removed."""
    copy = tmp_path / "tables-only" / run_dir.name
    shutil.copytree(run_dir, copy)
    for d in copy.glob("trial_*"):
        shutil.rmtree(d)
    (copy / "events.jsonl").unlink()
    return copy


def test_report_reads_only_the_tables(real_run, tmp_path):
    copy = without_trial_folders(real_run, tmp_path)
    before = build_report(real_run, tmp_path / "before.html").read_text()
    after = build_report(copy, tmp_path / "after.html").read_text()
    assert not list(copy.glob("trial_*"))
    assert after == before.replace(str(real_run), str(copy))
    assert "Best configuration" in after and "weight_decay" in after


def test_model_size_and_batch_size_sections(browser, ray_session, tmp_path):
    text = SPEC.replace("lr: {grid: [1.0, 0.1, 0.01]}", "hidden: {grid: [[16], [64]]}").replace(
        "weight_decay: {grid: [0.01, 0.0001]}", "batch_size: {grid: [50, 100]}").replace(
        "  hidden: [32]\n", "").replace("  batch_size: 100\n", "").replace(
        "scheduler: {name: asha, grace_period: 1, reduction_factor: 2}", "scheduler: {name: fifo}")
    exp = load_experiment(write_spec(tmp_path, text), ["budget.max_epochs=2"])
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    assert res.trials["n_params"].nunique() == 2
    out = build_report(res.run_dir, tmp_path / "arch.html")
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    assert drawn == divs and browser.find_element("id", "model-size")
    rows = browser.find_elements("css selector", "#epoch-time-table tbody tr")
    assert len(rows) == 2
    assert len(browser.find_elements("css selector", "#model-size-table tbody tr")) == 4


def test_regression_report_draws_the_surfaces(browser, ray_session, tmp_path):
    path = write_spec(tmp_path, """\
name: surface
trainable: regression
dataset: regression2d
metric: val_mse
budget: {max_epochs: 10}
params:
  m: {grid: [50, 400]}
  hidden: {grid: [[16], [32, 32]]}
""")
    res = run(load_experiment(path), storage=tmp_path / "runs", dashboard=False, verbose=0)
    assert (res.trials["status"] == "completed").all() and res.trials["test_mse"].notna().all()
    out = build_report(res.run_dir, tmp_path / "surface.html")
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    assert drawn == divs
    # truth + the best trial for m=50 and for m=400, each a WebGL surface that was drawn
    n = browser.execute_script("const d = document.getElementById('surface');"
                               "return d._fullData.filter(t => t.type === 'surface').length")
    assert n == 3
    titles = browser.find_element("id", "surface").text
    assert "best for m=50" in titles and "best for m=400" in titles
    # the surfaces come from the collector's artifact file, not from Ray's trial folders
    copy = without_trial_folders(res.run_dir, tmp_path)
    html = build_report(copy, tmp_path / "surface2.html").read_text()
    assert html == out.read_text().replace(str(res.run_dir), str(copy))


MULTI = """\
name: multi
trainable: mlp
dataset: {name: mnist_sample, train_size: 1000, val_size: 500}
objectives: {val_acc: max, n_params: min}
constraints: {n_params: {max: 60000}}
searcher: {name: optuna, sampler: tpe, n_startup_trials: 4}
budget: {max_epochs: 1, num_samples: 10, max_concurrent_trials: 2}
params:
  hidden: {choice: [[8], [32], [128]]}
  setup:
    choice:
      - {optimizer: sgd, lr: {loguniform: [0.01, 0.5]}, momentum: {uniform: [0.0, 0.95]}}
      - {optimizer: adam, lr: {loguniform: [1.0e-4, 1.0e-2]}}
  batch_size: 100
"""


def test_several_objectives_and_a_conditional_space_in_the_report(browser, ray_session, tmp_path):
    exp = load_experiment(write_spec(tmp_path, MULTI))
    res = run(exp, storage=tmp_path / "runs", dashboard=False, verbose=0)
    assert res.trials["pareto"].any() and not res.trials["feasible"].all()  # [128] has ~100k params
    out = build_report(res.run_dir, tmp_path / "multi.html")
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    assert divs >= 5 and drawn == divs
    pareto_ids = set(res.trials.loc[res.trials["pareto"], "trial_id"])
    rows = browser.find_elements("css selector", "#pareto-table tbody tr")
    assert {r.find_element("css selector", "td").text for r in rows} == pareto_ids
    # Optuna's Pareto-front plot, its axes named by the objectives
    layout = browser.execute_script("return document.getElementById('pareto')._fullLayout.xaxis.title.text"
                                    " + '|' + document.getElementById('pareto')._fullLayout.yaxis.title.text")
    assert layout == "val_acc|n_params"
    h3 = [e.text for e in browser.find_elements("css selector", "h3")]
    assert any(t.startswith("Parameter importance (PED-ANOVA on ") for t in h3), h3
    text = browser.find_element("tag name", "body").text
    assert "objectives\nval_acc (max), n_params (min); primary: val_acc" in text or \
        "val_acc (max), n_params (min); primary: val_acc" in text
    assert "n_params <= 60000" in text


def test_a_report_of_a_thousand_trials_stays_usable(browser, tmp_path):
    """1,000 trials (synthetic tables, no Ray): under 20 MB, opens without errors, every plot
    drawn; the learning curves become bands and Optuna's plots a sample, and the page says so."""
    from tests.report_fixtures import write_random_run

    out = build_report(write_random_run(tmp_path / "r1000", 1000), tmp_path / "r.html")
    assert out.stat().st_size < 20e6
    logs = open_page(browser, out)
    assert not [entry for entry in logs if entry["level"] == "SEVERE"], logs
    divs, drawn = plots_drawn(browser)
    assert divs >= 6 and drawn == divs
    headings = [h.text for h in browser.find_elements("css selector", "h3")]
    assert "Parallel coordinates (the 100 best and 100 evenly spaced others of 1000 trials)" in headings
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".map(d => (d._fullLayout.title && d._fullLayout.title.text) || '')")
    assert any(t.startswith("1000 trials: median and 25-75% band") for t in titles), titles
    rows = browser.execute_script("return document.querySelectorAll('#results-table tbody tr').length")
    assert rows == 1000
