"""Benchmark: how responsive the browser review is, on a phantom and on a real full-size case, against the same
MRML work done in-process.

    python benchmarks/bench_web_review.py [--full-analysis DIR] [--wait-for-load 1.5]

Cases: one phantom (seed 300, 80×94×77) and, when `../shared/data` holds it, the real BraTS case
brats_2013_pat0001_1 (240×240×155, FLAIR + T1c), each analysed without mirroring (the full-size analysis is
reused from `--full-analysis DIR` when that folder has one, else made once there). Each is served by `iwuo review`
and driven by Playwright in Debian's Chromium, timed in the page (`performance.now()`):
  - server start: process start to the port answering (the analysis is already there);
  - first frame: page load to the slice view showing an image;
  - Next → shown: the click to the page showing both the new rank and the first image of the new slice
    (median of 10; each click after the view is at rest);
  - stroke → log: the mouse release to the BudgetLog line on disk (median of 3), and to the budget text in
    the page naming the new count.
Reference, measured in the same run on the same analysis: the shared MRML layer in-process
(`ReviewSession.go_to`; `flush_edits` after a brush-sized labelmap edit, which saves the corrected segmentation
and then logs). Writes benchmarks/results/web_review.json with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FULL_CASE = ROOT.parent / "shared" / "data" / "brats2015" / "brats_2013_pat0001_1"
FULL_IMAGES = ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IWUO = [sys.executable, "-m", "IWUOSegmentationLib.cli"]
#: Page-side probes: when the rank attribute changes and when a slice view is given a new image (its src).
PAGE_PROBES = """
window.__iwuo = {rank: [], img: []};
new MutationObserver((records) => {
  for (const r of records) {
    if (r.attributeName === 'data-rank') window.__iwuo.rank.push([performance.now(), r.target.getAttribute('data-rank')]);
    else if (r.target.classList.contains('image-display-area')) window.__iwuo.img.push(performance.now());
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-rank', 'src']});
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def in_process_reference(images: list[Path], analysis: Path, out: Path) -> dict:
    """go_to and flush_edits of the shared MRML layer in a headless scene (no browser, no rendering)."""
    import slicer.util

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case = prepare_review_case(ReviewRequest([str(p) for p in images], None, str(out), str(analysis)))
    scene = create_headless_scene()
    for name in ("Red", "Yellow", "Green"):  # the headless scene needs slice nodes to navigate
        node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetName(name)
        node.SetLayoutName(name)
    volume = add_volume_from_image(case.images[0], "FLAIR")
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels,
                                      expected_identity=case.identity)
    session = open_review(scene, loaded, volume, out / "review.budget.jsonl")
    go_to = []
    for rank in range(10):
        t = time.perf_counter()
        session.go_to(rank)
        go_to.append(time.perf_counter() - t)
    segment_id = next(iter(loaded.labels))
    flush = []
    shape = slicer.util.arrayFromVolume(volume).shape
    for k in range(3):
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded.segmentation, segment_id, volume) > 0
        j, i = shape[1] // 2, shape[2] // 3 + 8 * k
        mask[session.ranking[k], j:j + 6, i:i + 6] = True  # about a brush stroke's voxels
        t = time.perf_counter()
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), loaded.segmentation, segment_id, volume)
        session.flush_edits()
        flush.append(time.perf_counter() - t)
    session.close()
    return {"go_to_ms": 1000 * statistics.median(go_to), "edit_and_flush_ms": 1000 * statistics.median(flush)}


def wait_image(page, clip: dict) -> None:
    import io

    from PIL import Image

    while np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("L")).std() <= 10:
        time.sleep(0.05)


def next_timings(page, n: int = 10) -> tuple[list[float], list[float]]:
    """(Next → rank and image both shown, Next → rank shown) in ms, each click from a view at rest."""
    shown, ranked = [], []
    for rank in range(1, n + 1):
        page.wait_for_timeout(1200)  # the still-quality frame of the last move is in
        t0 = page.evaluate("""() => { window.__iwuo.rank = []; window.__iwuo.img = [];
            const t = performance.now(); document.querySelector('[data-testid=btn-next]').click(); return t; }""")
        page.wait_for_selector(f"[data-testid=view-slice][data-rank='{rank}']")
        page.wait_for_function("() => window.__iwuo.img.length > 0", timeout=30_000)
        probes = page.evaluate("() => window.__iwuo")
        t_rank = min(t for t, r in probes["rank"] if r == str(rank))
        shown.append(max(t_rank, probes["img"][0]) - t0)
        ranked.append(t_rank - t0)
    return shown, ranked


def stroke_timings(page, log: Path, x0: float, y0: float, n: int = 3) -> tuple[list[float], list[float]]:
    """(release → BudgetLog line on disk, release → the page's budget text updated) in ms, one slice per stroke."""
    to_log, to_page = [], []
    for k in range(n):
        if k:
            page.click("[data-testid=btn-next]")
            page.wait_for_timeout(1200)
        page.click("[data-testid=effect-paint]")
        x, y = x0 + 30 * k, y0
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 6):
            page.mouse.move(x + 4 * step, y, steps=1)
        before, text = log_lines(log), page.inner_text("[data-testid=budget-text]")
        page.evaluate("(text) => { window.__iwuo.text = text; window.__iwuo.changed = null; }", text)
        page.evaluate("""() => { const el = document.querySelector('[data-testid=budget-text]');
            new MutationObserver(() => { if (window.__iwuo.changed === null && el.innerText !== window.__iwuo.text)
              window.__iwuo.changed = performance.now(); }).observe(el, {childList: true, subtree: true,
              characterData: true}); }""")
        t0, p0 = time.perf_counter(), page.evaluate("performance.now()")
        page.mouse.up()
        while log_lines(log) == before:
            time.sleep(0.002)
        to_log.append(1000 * (time.perf_counter() - t0))
        page.wait_for_function("() => window.__iwuo.changed !== null", timeout=30_000)
        to_page.append(page.evaluate("window.__iwuo.changed") - p0)
    return to_log, to_page


def browser_timings(images: list[str], analysis: Path, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    out.parent.mkdir(parents=True, exist_ok=True)
    server_log = open(out.parent / f"server_{port}.log", "w")
    start = time.perf_counter()
    server = subprocess.Popen([*IWUO, "--progress", "none", "review", "--case", *images, "--analysis", str(analysis),
                               "--out", str(out), "--port", str(port), "--disable-tta", "--device", "cpu"],
                              stdout=server_log, stderr=subprocess.STDOUT)
    try:
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if server.poll() is not None:
                raise SystemExit(f"iwuo review exited with {server.returncode}: see {server_log.name}")
            time.sleep(0.05)
        startup = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(PAGE_PROBES)
            t = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid=view-slice]")
            box = page.locator("[data-testid=views]").bounding_box()
            clip = {"x": box["x"] + 20, "y": box["y"] + 20, "width": box["width"] - 40, "height": box["height"] - 40}
            wait_image(page, clip)
            first_frame = time.perf_counter() - t
            shown, ranked = next_timings(page)
            to_log, to_page = stroke_timings(page, out / "review.budget.jsonl", box["x"] + 0.45 * box["width"],
                                             box["y"] + 0.45 * box["height"])
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"server_start_s": startup, "first_frame_s": first_frame, "next_ms": statistics.median(shown),
            "next_rank_only_ms": statistics.median(ranked), "next_ms_all": shown,
            "stroke_to_log_ms": statistics.median(to_log), "stroke_to_page_ms": statistics.median(to_page),
            "stroke_to_log_ms_all": to_log}


def measure_case(name: str, images: list[Path], analysis: Path, tmp: Path) -> dict:
    run = tempfile.mkdtemp(prefix=f"{name}_", dir=tmp)
    browser = browser_timings([str(p) for p in images], analysis, Path(run) / "browser" / "out")
    reference = in_process_reference(images, analysis, Path(run) / "reference")
    import SimpleITK as sitk

    size = sitk.ReadImage(str(images[0])).GetSize()
    result = {"case": name, "grid": "×".join(map(str, size)), **{k: round(v, 3) if isinstance(v, float) else
                                                               [round(x, 1) for x in v] for k, v in browser.items()},
              **{k: round(v, 3) for k, v in reference.items()}}
    result["next_ratio_vs_in_process_go_to"] = round(browser["next_ms"] / reference["go_to_ms"], 1)
    result["stroke_ratio_vs_in_process_edit_and_flush"] = round(browser["stroke_to_log_ms"]
                                                                / reference["edit_and_flush_ms"], 1)
    print(json.dumps(result), flush=True)
    return result


def analyse(images: list[Path], analysis: Path) -> None:
    if not (analysis / "summary.json").is_file():
        subprocess.run([*IWUO, "--progress", "none", "analyze", "--input", *map(str, images), "--output", str(analysis),
                        "--disable-tta", "--device", "cpu"], check=True)


def wait_for_quiet_machine(below: float, minutes: float) -> None:
    deadline = time.time() + 60 * minutes
    while os.getloadavg()[0] >= below and time.time() < deadline:
        print(f"load average {os.getloadavg()[0]:.2f} >= {below}: waiting", flush=True)
        time.sleep(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-analysis", default=None, help="analysis folder of the full-size case (made if absent)")
    parser.add_argument("--wait-for-load", type=float, default=None, help="wait until the 1-min load is below this")
    parser.add_argument("--wait-minutes", type=float, default=40)
    parser.add_argument("--only", choices=("phantom", "full"), default=None)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one); analyses kept there")
    args = parser.parse_args()
    from IWUOSegmentationLib.data.phantom import write_phantoms

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(args.work or tmp)
        if args.only != "full":
            if not (tmp / "cases" / "phantom_0300").is_dir():
                write_phantoms(tmp / "cases", 1, seed=300, layout="cases")
            images = [tmp / "cases" / "phantom_0300" / f"{channel}.nii.gz" for channel in ("FLAIR", "T1c")]
            analyse(images, tmp / "phantom_analysis")
            if args.wait_for_load:
                wait_for_quiet_machine(args.wait_for_load, args.wait_minutes)
            cases.append(("phantom", images, tmp / "phantom_analysis"))
        if args.only != "phantom" and FULL_CASE.is_dir():
            images = [FULL_CASE / name for name in FULL_IMAGES]
            analysis = Path(args.full_analysis) if args.full_analysis else tmp / "full_analysis"
            analyse(images, analysis)
            cases.append(("brats_2013_pat0001_1", images, analysis))
        if args.wait_for_load:
            wait_for_quiet_machine(args.wait_for_load, args.wait_minutes)
        load = os.getloadavg()
        results = [measure_case(name, images, analysis, tmp) for name, images, analysis in cases]
    result = {
        "cases": results, "load_average_1_5_15": [round(v, 2) for v in load],
        "cpu_count": os.cpu_count(),
        "note": "Chromium headless + Mesa llvmpipe (EGL) on the same machine; medians of 10 Next / 3 strokes",
    }
    out = ROOT / "benchmarks" / "results" / "web_review.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
