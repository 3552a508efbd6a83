"""Browser front end end to end: `iwuo review` (trame-slicer) driven by Playwright in Debian's Chromium.

A real server process on a phantom case with the bundled model; real clicks and a real brush
stroke in the page; the assertions read the server's own records (the Red slice node's offset
mapped back to a slice index, the BudgetLog file, the saved corrected segmentation).
Screenshots of each step go to $IWUO_ARTIFACTS/web_review (default test-artifacts/web_review).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

CHROMIUM = "/usr/bin/chromium"
IWUO = [sys.executable, "-m", "IWUOSegmentationLib.cli"]
ARTIFACTS = Path(os.environ.get("IWUO_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")) / "web_review"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(case_dir: Path, out: Path, port: int) -> subprocess.Popen:
    log = open(out.parent / f"server_{port}.log", "w")
    proc = subprocess.Popen([*IWUO, "--progress", "none", "review", "--case", str(case_dir), "--out", str(out),
                             "--port", str(port), "--disable-tta", "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"review server exited with {proc.returncode}:\n{Path(log.name).read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("review server did not start in 240 s")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM must stop the server (the analysis' Ctrl-C handler must not outlive the analysis)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the review server ignored SIGTERM") from None


def read_log(out: Path) -> list[dict]:
    path = out / "review.budget.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def expected_ranking(analysis_dir: Path) -> list[int]:
    """The product's default order computed here from the analysis files, independently of the app."""
    from IWUOSegmentationLib.data.analysis_files import read_analysis
    from IWUOSegmentationLib.ranking.strategies import rank_case

    _, _, rows = rank_case(read_analysis(analysis_dir))
    return [row["slice"] for row in rows]


def label_arrays(out: Path) -> tuple[np.ndarray, np.ndarray]:
    read = lambda p: sitk.GetArrayFromImage(sitk.ReadImage(str(p)))  # noqa: E731
    return read(out / "analysis" / "segmentation.nii.gz"), read(out / "corrected_segmentation.nii.gz")


def assert_log_matches_saved_segmentation(out: Path, settle: float = 10.0) -> set[int]:
    """Once the server has finished the flush under way (within `settle` s), every changed voxel of the saved
    segmentation is on a logged slice, and per label the logged net change equals the saved one: nothing
    corrected is missing from the log, nothing logged is unsaved. (A slice edited and then restored is logged
    but unchanged, hence a subset.) Returns the slices the saved segmentation changed."""
    deadline = time.time() + settle
    while True:
        try:
            return _log_matches_saved_segmentation(out)
        except AssertionError:
            if time.time() > deadline:
                raise
            time.sleep(0.25)


def _log_matches_saved_segmentation(out: Path) -> set[int]:
    original, corrected = label_arrays(out)
    events = [e for e in read_log(out) if e["kind"] == "slice_corrected"]
    changed_slices = set(np.unique(np.argwhere(original != corrected)[:, 0]).tolist())
    logged = {int(e["slice"]) for e in events if e.get("voxels_added") or e.get("voxels_removed")}
    assert changed_slices <= logged, (changed_slices, logged)
    for label in np.unique(np.concatenate([original.ravel(), corrected.ravel()])):
        if label == 0:
            continue
        net = sum(e.get("voxels_added", {}).get(str(label), 0) - e.get("voxels_removed", {}).get(str(label), 0)
                  for e in events)
        assert net == int((corrected == label).sum()) - int((original == label).sum()), label
    return changed_slices


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def review(phantom_cases, tmp_path_factory):
    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    out = tmp_path_factory.mktemp("web_review") / "out"
    port = free_port()
    info = {"case": case_dir, "out": out, "port": port, "proc": start_server(case_dir, out, port)}
    yield info
    stop_server(info["proc"])  # the server the tests left running (one test restarts it)


def open_page(browser, port: int):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("[data-testid=view-slice]", timeout=60_000)
    page.wait_for_selector(".rca-view img, .rca-view canvas, img", timeout=60_000)
    return page


def view_state(page) -> tuple[int, int]:
    el = page.locator("[data-testid=view-slice]")
    return int(el.get_attribute("data-rank")), int(el.get_attribute("data-slice"))


def view_box(page):
    """The slice view's on-screen box (the page area right of the panel, below the app bar)."""
    box = page.locator("[data-testid=views]").bounding_box()
    panel = page.locator(".v-navigation-drawer").first.bounding_box()
    left, top = panel["x"] + panel["width"], panel["y"]
    return left, top, box["x"] + box["width"] - left, box["y"] + box["height"] - top


def view_png(page) -> bytes:
    """A screenshot of the slice view alone."""
    x, y, w, h = view_box(page)
    return page.screenshot(clip={"x": x, "y": y, "width": w, "height": h})


def server_answers(port: int) -> bool:
    """The server still serves its page (it survived whatever happened before)."""
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_rendered(page, timeout: float = 20.0) -> None:
    """Wait until the streamed slice view shows an image (a reloaded page starts black)."""
    import io

    from PIL import Image

    x, y, w, h = view_box(page)
    deadline = time.time() + timeout
    while time.time() < deadline:
        png = page.screenshot(clip={"x": x, "y": y, "width": w, "height": h})
        if np.asarray(Image.open(io.BytesIO(png)).convert("L")).std() > 10:
            return
        time.sleep(0.3)
    raise AssertionError("the slice view stayed blank")


def shot(page, name: str) -> Path:
    wait_rendered(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def paint_stroke(page, release: bool = True, effect: str = "paint") -> None:
    page.click(f"[data-testid=effect-{effect}]")
    page.wait_for_selector(f"[data-testid=effect-{effect}].v-btn--variant-flat")
    x, y, w, h = view_box(page)
    cx, cy = x + 0.5 * w, y + 0.35 * h
    page.mouse.move(cx, cy)
    page.mouse.down()
    for k in range(1, 12):
        page.mouse.move(cx + 5 * k, cy + 2 * k, steps=2)
    if release:
        page.mouse.up()


def test_next_paint_reload_in_chromium(review, browser):
    out, port = review["out"], review["port"]
    ranking = expected_ranking(out / "analysis")
    server_log = (out.parent / f"server_{port}.log").read_text()
    if not os.environ.get("DISPLAY"):
        assert "slice views rendered by vtkEGLRenderWindow" in server_log, server_log[-2000:]
    page = open_page(browser, port)
    shots = [shot(page, "0_opened")]
    assert page.locator("[data-testid=ranking] tbody tr").count() == len(ranking)

    for step in range(1, 4):
        previous = view_png(page)
        page.click("[data-testid=btn-next]")
        page.wait_for_selector(f"[data-testid=view-slice][data-rank='{step}']")
        rank, slice_index = view_state(page)
        assert slice_index == ranking[step - 1], f"Next #{step}: view on slice {slice_index}, ranked {ranking[step - 1]}"
        if step > 1:  # ranks 1-3 are different slices (rank 1 may happen to be the slice shown on opening)
            wait_for(lambda previous=previous: view_png(page) != previous, 30, f"the view to show rank {step}'s slice")
        shots.append(shot(page, f"{step}_next_rank_{step}"))
    assert len({p.read_bytes() for p in shots}) == len(shots), "the rendered view did not change with Next"
    shown = [e["slice"] for e in read_log(out) if e["kind"] == "slice_shown"]
    assert shown[:2] == ranking[:2], "leaving ranks 1 and 2 was not logged"

    before = len(read_log(out))
    paint_stroke(page)
    corrected = wait_for(lambda: [e for e in read_log(out)[before:] if e["kind"] == "slice_corrected"], 30,
                         "the stroke to be logged")
    shot(page, "4_painted")
    assert [e["slice"] for e in corrected] == [ranking[2]], "the stroke was logged against another slice"
    assert sum(corrected[0]["voxels_added"].values()) > 0
    assert corrected[0]["rank"] == 3 and corrected[0]["estimated_dice_gain"] >= 0
    changed = assert_log_matches_saved_segmentation(out)
    assert changed == {ranking[2]}, f"the saved segmentation changed on slices {changed}, not only on the painted one"
    page.wait_for_selector("[data-testid=budget-text]:has-text('1 of 20 slices')")

    before = len(read_log(out))
    paint_stroke(page, effect="erase")  # the same slice again: logged, counted once
    erased = wait_for(lambda: [e for e in read_log(out)[before:] if e["kind"] == "slice_corrected"], 30,
                      "the erase stroke to be logged")
    assert [e["slice"] for e in erased] == [ranking[2]] and sum(erased[0]["voxels_removed"].values()) > 0
    assert assert_log_matches_saved_segmentation(out) <= {ranking[2]}
    assert "1 of 20 slices" in page.inner_text("[data-testid=budget-text]")

    page.click("[data-testid=map-select]")  # heatmap choice and opacity act on the server's slice view
    page.locator(".v-overlay .v-list-item", has_text="impact").first.click()
    page.wait_for_selector("[data-testid=foreground][data-foreground^='FLAIR impact']")
    page.locator("[data-testid=opacity] [role=slider]").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("[data-testid=foreground][data-foreground$='@ 0.45']")
    shot(page, "4b_impact_overlay")

    page.reload()
    page.wait_for_selector("[data-testid=view-slice][data-rank='3']", timeout=60_000)
    assert view_state(page) == (3, ranking[2])
    assert "1 of 20 slices" in page.inner_text("[data-testid=budget-text]")
    assert page.locator("[data-testid=ranking] tbody tr").nth(2).inner_text().split()[-1] == "corrected"
    shot(page, "5_reloaded")

    page.keyboard.press("p")  # the desktop module's shortcuts: P previous, N next
    page.wait_for_selector("[data-testid=view-slice][data-rank='2']")
    assert view_state(page) == (2, ranking[1])
    page.keyboard.press("n")
    page.wait_for_selector("[data-testid=view-slice][data-rank='3']")
    assert view_state(page) == (3, ranking[2])
    page.close()


def test_every_channel_as_the_background_and_three_views(review, browser):
    """The selector shows T1c under the overlay and the segmentation (the Red view's composite node says so, and the
    rendered pixels change), the C key cycles back to FLAIR, and the three-view layout shows three rendered views."""
    import io

    from PIL import Image

    page = open_page(browser, review["port"])
    wait_rendered(page)
    assert page.locator("[data-testid=background]").get_attribute("data-background") == "FLAIR"
    foreground = page.locator("[data-testid=foreground]").get_attribute("data-foreground")
    shots = {"FLAIR": view_png(page)}
    shot(page, "7_channel_FLAIR")
    page.click("[data-testid=channel-select]")
    page.locator(".v-overlay .v-list-item", has_text="T1c").first.click()
    page.wait_for_selector("[data-testid=background][data-background='T1c']")
    wait_for(lambda: view_png(page) != shots["FLAIR"], 30, "the view to show T1c")
    shots["T1c"] = view_png(page)
    shot(page, "7_channel_T1c")
    assert page.locator("[data-testid=foreground]").get_attribute("data-foreground") == foreground, \
        "the heatmap overlay is no longer the foreground over T1c"
    flair, t1c = (np.asarray(Image.open(io.BytesIO(shots[c])).convert("L"), float) for c in ("FLAIR", "T1c"))
    assert np.abs(flair - t1c).mean() > 2, "the rendered view hardly changed between FLAIR and T1c"

    page.click("[data-testid=view-slice]")  # focus off the selector: keys go to the page
    page.keyboard.press("c")  # the channel key: after the last channel, the first again
    page.wait_for_selector("[data-testid=background][data-background='FLAIR']")
    wait_for(lambda: view_png(page) != shots["T1c"], 30, "the view to show FLAIR again")

    def shown_views() -> list:  # per view laid out on the page (others may be kept hidden): has it an image?
        # read in one step in the page: a view the layout change removes meanwhile is simply not counted
        return page.eval_on_selector_all(
            "[data-testid=views] div.remote-controlled-area",
            "els => els.filter(e => e.getBoundingClientRect().width > 50)"
            ".map(e => !!e.querySelector(\"img.image-display-area[src^='blob:']\"))")

    one = len(shown_views())
    page.click("[data-testid=effect-paint]")  # Paint used before the views are made (trame-slicer then makes
    page.wait_for_selector("[data-testid=effect-paint].v-btn--variant-flat")  # their Paint pipelines without a view)
    page.click("[data-testid=effect-none]")
    page.click("[data-testid=three-views]")
    wait_for(lambda: len(shown_views()) == one + 2, 60, "two views more")
    wait_for(lambda: all(shown_views()), 60, "an image in each of the three views")
    shot(page, "8_three_views")
    page.click("[data-testid=effect-paint]")  # Paint can still be chosen with the new views
    page.wait_for_selector("[data-testid=effect-paint].v-btn--variant-flat", timeout=10_000)
    page.click("[data-testid=effect-none]")
    page.click("[data-testid=three-views]")
    wait_for(lambda: len(shown_views()) == one, 60, "one view again")
    page.close()


def corrected_slices(out: Path) -> set[int]:
    return {int(e["slice"]) for e in read_log(out) if e["kind"] == "slice_corrected"}


def test_disconnect_mid_edit_then_restart_resumes_from_log(review, browser, tmp_path):
    """Independent of the other tests: the expectations start from wherever the session's log stands."""
    out, port, proc = review["out"], review["port"], review["proc"]
    ranking = expected_ranking(out / "analysis")
    page = open_page(browser, port)
    start_rank, _ = view_state(page)
    rank = start_rank + 1
    page.click("[data-testid=btn-next]")
    page.wait_for_selector(f"[data-testid=view-slice][data-rank='{rank}']")
    assert view_state(page) == (rank, ranking[rank - 1])
    events_before = len(read_log(out))
    counted = len(corrected_slices(out) | {ranking[rank - 1]})
    paint_stroke(page)  # a finished stroke the server has applied (the page shows it counted) ...
    page.wait_for_selector(f"[data-testid=budget-text]:has-text('{counted} of 20 slices')")
    page.close()  # ... then the browser goes away
    for release in (False, True):
        # a stroke cut off mid-way (button still down), and one whose release races the disconnect
        cut = open_page(browser, port)
        paint_stroke(cut, release=release)
        cut.close()
        wait_for(lambda: server_answers(port), 30, "the server to answer after the browser disconnected")
        assert proc.poll() is None, "the server died when the browser disconnected"
        changed = assert_log_matches_saved_segmentation(out)
    assert ranking[rank - 1] in changed, "the stroke made before the disconnect was lost"
    n_events = len(read_log(out))
    assert n_events > events_before

    stop_server(proc)
    new_port = free_port()
    review["proc"] = start_server(review["case"], out, new_port)
    page = open_page(browser, new_port)
    assert view_state(page) == (rank, ranking[rank - 1]), "the restarted app did not resume where the log says"
    statuses = [row.split()[-1] for row in page.locator("[data-testid=ranking] tbody tr").all_inner_texts()]
    corrected_ranks = [r for r, slice_index in enumerate(ranking) if slice_index in corrected_slices(out)]
    assert rank - 1 in corrected_ranks and all(statuses[r] == "corrected" for r in corrected_ranks), statuses
    assert f"{len({e['slice'] for e in read_log(out) if e['kind'] == 'slice_corrected'})} of 20 slices" in \
        page.inner_text("[data-testid=budget-text]")
    assert len(read_log(out)) == n_events, "reopening the session rewrote or added to its log"
    assert_log_matches_saved_segmentation(out)
    shot(page, "6_restarted")
    page.click("[data-testid=btn-report]")
    page.wait_for_selector("[data-testid=message]:has-text('review_report.md')")
    report = (out / "review_report.md").read_text()
    corrected = len({e["slice"] for e in read_log(out) if e["kind"] == "slice_corrected"})
    assert f"| slices corrected | {corrected} of 20 |" in report
    page.close()


def test_port_in_use_is_refused_before_any_work(phantom_cases, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
        run = subprocess.run([*IWUO, "review", "--case", str(case_dir), "--out", str(tmp_path / "o"), "--port",
                              str(port)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert f"Port {port}" in run.stderr and "already in use" in run.stderr
    assert not (tmp_path / "o" / "analysis").exists()


def test_case_the_model_cannot_take_is_refused(phantom_cases, tmp_path):
    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[0]
    only_flair = tmp_path / "flair_only"
    only_flair.mkdir()
    (only_flair / "FLAIR.nii.gz").write_bytes((case_dir / "FLAIR.nii.gz").read_bytes())
    run = subprocess.run([*IWUO, "review", "--case", str(only_flair), "--port", str(free_port()), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "No image found for channel(s) T1c" in run.stderr, run.stderr

    flat = [tmp_path / f"flat_{i:04d}.nii.gz" for i in range(2)]
    for path in flat:
        sitk.WriteImage(sitk.Image(32, 32, sitk.sitkFloat32), str(path))
    run = subprocess.run([*IWUO, "review", "--case", *map(str, flat), "--port", str(free_port()), "--out",
                          str(tmp_path / "o2")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "3-D volume is needed" in run.stderr, run.stderr


def test_ctrl_c_during_analysis_cancels_cleanly(phantom_cases, tmp_path):
    """Ctrl-C while `iwuo review` analyses: exit 4, no analysis folder, nothing half-written."""
    import signal

    case_dir = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[2]
    out = tmp_path / "o"
    proc = subprocess.Popen([*IWUO, "--progress", "json", "review", "--case", str(case_dir), "--out", str(out),
                             "--port", str(free_port()), "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until the analysis reports progress, then interrupt it
        if '"progress"' in line and json.loads(line)["progress"] > 0.05:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 4, rest[-2000:]
    assert "cancelled" in rest
    assert not (out / "analysis").exists() and not list(out.glob(".*partial*"))
