"""Benchmark: how responsive the browser review is, against the same MRML work done in-process.

    python benchmarks/bench_web_review.py

One phantom (seed 300), analysed without mirroring, served by `iwuo review` and driven by Playwright
in Debian's Chromium. Measured in the browser: server start to port open, page load to first frame,
Next click to the page showing the new rank (median of 10), stroke release to the BudgetLog line
(median of 3). Reference, measured in the same run on the same analysis: the shared MRML layer
in-process (`ReviewSession.go_to`; `flush_edits` after a brush-sized labelmap edit, which saves the
corrected segmentation and then logs). Writes benchmarks/results/web_review.json.
"""

from __future__ import annotations

import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def in_process_reference(case_dir: Path, out: Path) -> dict:
    """go_to and flush_edits of the shared MRML layer in a headless scene (no browser, no rendering)."""
    import slicer.util

    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
    from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review
    from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case

    case = prepare_review_case(ReviewRequest([str(case_dir)], None, str(out / "reference"), str(out / "browser" / "analysis")))
    scene = create_headless_scene()
    for i in range(3):  # the headless scene needs slice nodes to navigate
        node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetName(("Red", "Yellow", "Green")[i])
        node.SetLayoutName(("Red", "Yellow", "Green")[i])
    volume = add_volume_from_image(case.images[0], "FLAIR")
    loaded = load_analysis_into_scene(scene, case.analysis_dir, volume, case.written_labels,
                                      expected_identity=case.identity)
    session = open_review(scene, loaded, volume, out / "reference" / "review.budget.jsonl")
    go_to = []
    for rank in range(10):
        t = time.perf_counter()
        session.go_to(rank)
        go_to.append(time.perf_counter() - t)
    segment_id = next(iter(loaded.labels))
    flush = []
    for k in range(3):
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(loaded.segmentation, segment_id, volume) > 0
        mask[session.ranking[k], 20:26, 20 + 8 * k:26 + 8 * k] = True  # about a brush stroke's voxels
        t = time.perf_counter()
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), loaded.segmentation, segment_id, volume)
        session.flush_edits()
        flush.append(time.perf_counter() - t)
    session.close()
    return {"go_to_ms": 1000 * statistics.median(go_to), "edit_and_flush_ms": 1000 * statistics.median(flush)}


def browser_timings(case_dir: Path, out: Path) -> dict:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "IWUOSegmentationLib.cli", "--progress", "none", "review",
                               "--case", str(case_dir), "--out", str(out), "--port", str(port), "--disable-tta",
                               "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if server.poll() is not None:
                raise SystemExit(f"iwuo review exited with {server.returncode}")
            time.sleep(0.2)
        startup = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            t = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid=view-slice]")
            while True:
                png = page.screenshot(clip={"x": 400, "y": 80, "width": 900, "height": 700})
                if np.asarray(Image.open(io.BytesIO(png)).convert("L")).std() > 10:
                    break
            first_frame = time.perf_counter() - t
            nexts = []
            for rank in range(1, 11):
                t = time.perf_counter()
                page.click("[data-testid=btn-next]")
                page.wait_for_selector(f"[data-testid=view-slice][data-rank='{rank}']")
                nexts.append(time.perf_counter() - t)
            page.click("[data-testid=effect-paint]")
            strokes = []
            log = out / "review.budget.jsonl"
            for k in range(3):
                x, y = 700 + 40 * k, 300
                page.mouse.move(x, y)
                page.mouse.down()
                for step in range(1, 6):
                    page.mouse.move(x + 4 * step, y, steps=1)
                before = log_lines(log)
                t = time.perf_counter()
                page.mouse.up()
                while log_lines(log) == before:
                    time.sleep(0.005)
                strokes.append(time.perf_counter() - t)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"server_start_s": startup, "first_frame_s": first_frame, "next_ms": 1000 * statistics.median(nexts),
            "stroke_to_log_ms": 1000 * statistics.median(strokes)}


def main() -> None:
    from IWUOSegmentationLib.data.phantom import write_phantoms

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_phantoms(tmp / "cases", 1, seed=300, layout="cases")
        case_dir = tmp / "cases" / "phantom_0300"
        browser = browser_timings(case_dir, tmp / "browser")
        reference = in_process_reference(case_dir, tmp)
    result = {
        **{k: round(v, 3) for k, v in browser.items()}, **{k: round(v, 3) for k, v in reference.items()},
        "next_ratio_vs_in_process_go_to": round(browser["next_ms"] / reference["go_to_ms"], 1),
        "stroke_ratio_vs_in_process_edit_and_flush": round(browser["stroke_to_log_ms"] / reference["edit_and_flush_ms"],
                                                           1),
        "note": "2-core CPU, Mesa llvmpipe (EGL), Chromium headless on the same machine; medians of 10 Next / 3 strokes",
    }
    out = ROOT / "benchmarks" / "results" / "web_review.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
