"""`iwuo phantom`: synthetic brain-tumour (or tissue) phantoms with their reference labels."""

from __future__ import annotations

import json

from .arguments import parse_spacing
from .progress import Progress


def add_parser(sub) -> None:
    p = sub.add_parser("phantom", help="generate synthetic brain-tumour phantoms")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["nnunet", "cases"], default="cases")
    p.add_argument("--spacing", type=parse_spacing, default=(2.0, 2.0, 2.0), help="mm, x,y,z (e.g. 1,1,5)")
    p.add_argument("--mass-effect", action="store_true")
    p.add_argument("--label-based", action="store_true", help="dataset.json with labels instead of BraTS regions")
    p.add_argument("--label-convention", default="brats2013", choices=["brats2013", "brats2021", "brats2023"],
                   help="BraTS labels to write: 2013-2015 (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing), "
                        "2017-2021 (1 NCR/NET, 2 ED, 4 ET) or 2023-2024 (1 NCR, 2 ED, 3 ET); case folders are named "
                        "as that year's BraTS names them")
    p.add_argument("--kind", default="tumour", choices=["tumour", "tissue"],
                   help="tumour: gliomas on FLAIR+T1c; tissue: CSF/grey/white matter labels on T1 (not a tumour task)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.phantom import write_phantoms

    root = write_phantoms(args.out, args.n, seed=args.seed, layout=args.layout, spacing=args.spacing,
                          mass_effect=args.mass_effect, region_based=not args.label_based,
                          progress=Progress(args.progress), label_convention=args.label_convention, kind=args.kind)
    print(json.dumps({"output": str(root), "cases": args.n}))
    return 0
