"""The built-in demo: phantoms -> analysis with the bundled model -> IWUO evaluation report.

Needs no data and downloads nothing: the phantoms are generated from the brain template in
nilearn's wheel and the model ships inside this package.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInputError
from ..nnunet.analysis_settings import DEFAULT_DEVICE, AnalysisSettings
from ..nnunet.demo_model import FIRST_TRAINING_SEED
from ..ranking.strategies import DEFAULT_RANKING
from ..simulation.evaluate_folders import evaluate_folder_case
from ..simulation.evaluation_config import EvaluationConfig
from .progress import Progress

DEMO_SEEDS_START = 100  # below FIRST_TRAINING_SEED: cases the demo model never saw
#: Correcting-expert draws per demo case: fewer than the protocol's 10, so that the demo stays a few minutes on
#: 2 CPU cores (its report says how many were drawn).
DEMO_EXPERT_DRAWS = 5


def run_demo(out: Path, n_cases: int = 3, device: str = DEFAULT_DEVICE, progress=None) -> Path:
    if not 1 <= n_cases <= FIRST_TRAINING_SEED - DEMO_SEEDS_START:
        raise BadInputError(f"The demo takes 1 to {FIRST_TRAINING_SEED - DEMO_SEEDS_START} cases (phantom seeds the "
                            "demo model never saw during training).")
    from ..data.phantom import write_phantoms  # scipy: imported when a demo runs, not with every `iwuo` command
    from ..simulation.report import write_report

    progress = progress or (lambda f, m: None)
    out = Path(out)
    cases = out / "phantoms"
    progress(0.0, f"generating {n_cases} phantom cases")
    write_phantoms(cases, n_cases, seed=DEMO_SEEDS_START, layout="cases")
    from ..nnunet.analysis import CaseAnalyzer

    analyzer = CaseAnalyzer.open(None, AnalysisSettings(device=device))  # the bundled model, loaded once
    config = EvaluationConfig(regions=("WT", "TC", "ET"), expert_draws=DEMO_EXPERT_DRAWS)
    folders = sorted(p for p in cases.iterdir() if p.is_dir())
    for i, folder in enumerate(folders):
        out_case = out / "cases" / folder.name
        evaluate_folder_case(folder, analyzer.model, analyzer, out_case, config,
                             progress=lambda f, m, i=i, name=folder.name: progress((i + f) / len(folders), f"{name}: {m}"))
    report = write_report(out)
    summary = [json.loads((out / "cases" / f.name / "evaluation.json").read_text()) for f in folders]
    for record in summary:
        rows = [r for r in record["rows"] if r["region"] == "mean" and r["expert"] == "noisy"
                and r["strategy"] == DEFAULT_RANKING]
        if rows:
            print(f"{record['case']}: mean Dice {rows[0]['dice_before']:.3f} before correction; the default ranking "
                  f"{DEFAULT_RANKING} gains {rows[0]['dice_gain_300s']:+.4f} Dice in 5 minutes of a correcting expert "
                  f"(mean of {rows[0]['draws']} expert draws)")
    return report.parent


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="phantoms -> analysis with the bundled model -> IWUO evaluation")
    p.add_argument("--out", default="iwuo_demo_output")
    p.add_argument("--cases", type=int, default=3)
    p.add_argument("--device", default=DEFAULT_DEVICE)
    p.set_defaults(func=run)


def run(args) -> int:
    out = run_demo(Path(args.out), n_cases=args.cases, device=args.device, progress=Progress(args.progress))
    print(f"Demo finished. Results: {out.resolve()} (open {out.resolve() / 'report.md'})")
    return 0
