"""`iwuo review-report`: a review's correction budget, from its budget log."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("review-report", help="report of a review's correction budget from its budget log")
    p.add_argument("--log", required=True, help="review.budget.jsonl of a session (desktop or browser)")
    p.add_argument("--out", default=None, help="folder for the report (default: beside the log)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..review.report import write_review_report

    report = write_review_report(args.log, args.out)
    print(json.dumps({"report": str(report.resolve())}))
    return 0
