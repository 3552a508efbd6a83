"""Named structures of a model: its labels, its regions and all foreground, from its dataset.json.

Why: ranking, review and evaluation must work on whatever an nnU-Net v2 model segments (a
prostate, liver and tumour, brain tissues, BraTS in any year's labels), never on fixed label
values. nnU-Net's `dataset.json` says it all: `labels` maps names to an int (a softmax class)
or to a tuple of label values (a sigmoid region), and `regions_class_order` says which value a
region writes into the label map. A region's voxels in a label map (written or reference) are
those whose value is in its tuple, which is how nnU-Net itself turns label maps into regions.

A `Structure` knows its label values (for masks of written and reference label maps) and how to
get its probability from the network outputs: a region's sigmoid channel, the sum of a label
model's softmax channels, or (for the union of regions no single region covers) their maximum,
which is above 0.5 exactly where nnU-Net writes foreground. The default review target is the
union of all foreground ("all foreground"; for BraTS region models that is the whole tumour).

BraTS label conventions differ by year; `BRATS_CONVENTIONS` holds each one's labels and its
WT/TC/ET regions, and `brats_regions` finds WT/TC/ET of a model from its label names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from ..errors import BadInputError

ALL_FOREGROUND = "all foreground"

#: BraTS label conventions: label value -> role, and the evaluation regions over the values.
BRATS_CONVENTIONS: dict[str, dict] = {
    "brats2013": {"title": "BraTS 2013-2015 (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing)",
                  "labels": {"necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4},
                  "regions": {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,)}},
    "brats2021": {"title": "BraTS 2017-2021 (1 NCR/NET, 2 ED, 4 ET)",
                  "labels": {"NCR": 1, "ED": 2, "ET": 4},
                  "regions": {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}},
    "brats2023": {"title": "BraTS 2023-2024 (1 NCR, 2 ED, 3 ET)",
                  "labels": {"NCR": 1, "ED": 2, "ET": 3},
                  "regions": {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}},
}
#: Other names of the conventions (by year) accepted by --label-convention.
CONVENTION_ALIASES = {**{f"brats{y}": "brats2013" for y in (2013, 2014, 2015)},
                      **{f"brats{y}": "brats2021" for y in (2017, 2018, 2019, 2020, 2021)},
                      **{f"brats{y}": "brats2023" for y in (2023, 2024)}}
#: Region models: region names that stand for WT, TC and ET.
_REGION_ROLES = {"WT": ("wt", "wholetumor", "wholetumour", "whole"), "TC": ("tc", "tumorcore", "tumourcore", "core"),
                 "ET": ("et", "enhancingtumor", "enhancingtumour", "enhancing", "enh")}
#: Label models: label names of the tumour compartments (oedema is outside the tumour core).
_EDEMA = ("ed", "edema", "oedema", "peritumoraledema", "peritumouraloedema", "snfh", "invaded", "edematous")
_ENHANCING = ("et", "enhancing", "enhancingtumor", "enhancingtumour", "gdenhancingtumor", "enh")
_CORE_OTHER = ("ncr", "net", "ncrnet", "necrosis", "necrotic", "necroticcore", "nonenhancing", "nonenhancingtumor",
               "necroticnonenhancing", "netc")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def resolve_convention(name: str) -> str:
    """Canonical key of a BraTS convention given by name or year (brats2015 -> brats2013)."""
    key = _norm(name)
    key = key if key.startswith("brats") else f"brats{key}"
    key = CONVENTION_ALIASES.get(key, key)
    if key not in BRATS_CONVENTIONS:
        raise BadInputError(f"Unknown label convention {name!r}; use one of brats2013 (2013-2015), brats2021 "
                            "(2017-2021) or brats2023 (2023-2024).")
    return key


@dataclass(frozen=True)
class Structure:
    """One named thing a model segments, with its values in the label map and its probability channels."""

    name: str
    label_values: tuple[int, ...]
    channels: tuple[int, ...]
    combine: str = "sum"  # sum: softmax classes; max: union of sigmoid regions (one channel: that channel)
    kind: str = "label"  # label | region | union

    def mask(self, label_map: np.ndarray) -> np.ndarray:
        return np.isin(label_map, self.label_values)

    def probability(self, probabilities: np.ndarray) -> np.ndarray:
        """P(voxel in the structure) from the network outputs (channels first)."""
        if max(self.channels) >= len(probabilities):
            raise BadInputError(f"The probabilities have {len(probabilities)} channels; structure {self.name} "
                                f"needs channel {max(self.channels)}.")
        picked = probabilities[list(self.channels)]
        return picked.max(0) if self.combine == "max" else picked.sum(0)


@dataclass
class ModelStructures:
    """The structures of one model, in dataset.json order, the union last; `default` is the review target."""

    structures: dict[str, Structure]
    default: str
    region_based: bool
    brats: dict[str, str] = field(default_factory=dict)  # WT/TC/ET -> structure name, when recognised
    ignore_values: tuple[int, ...] = ()  # nnU-Net's "ignore" label: allowed in references, never scored

    @property
    def names(self) -> list[str]:
        return list(self.structures)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Every non-background value the model's label space uses."""
        return tuple(sorted({v for s in self.structures.values() for v in s.label_values}))

    def get(self, name: Optional[str] = None) -> Structure:
        """The structure called `name` (case and punctuation ignored; WT/TC/ET on BraTS models; the default when
        None or "all foreground")."""
        if name is None or _norm(name) == _norm(ALL_FOREGROUND):
            return self.structures[self.default] if name is None or ALL_FOREGROUND not in self.structures \
                else self.structures[ALL_FOREGROUND]
        for key, structure in self.structures.items():
            if _norm(key) == _norm(name):
                return structure
        if name.upper() in self.brats:
            return self.structures[self.brats[name.upper()]]
        raise BadInputError(f"The model has no structure {name!r}; choose one of: {', '.join(self.target_choices())}.")

    def target_choices(self) -> list[str]:
        """Names a user can pick as review target, the default first."""
        return [self.default, *(n for n in self.structures if n != self.default)]

    def regions(self) -> dict[str, tuple[int, ...]]:
        """Structure name -> label values: the mapping ranking, metrics and evaluation take."""
        return {name: s.label_values for name, s in self.structures.items()}

    def brats_regions(self) -> dict[str, Structure]:
        """WT/TC/ET as structures of this model (empty when the model is not a BraTS model)."""
        return {role: self.structures[name] for role, name in self.brats.items()}


def _as_values(value) -> tuple[int, ...]:
    values = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)
    return tuple(sorted(set(values)))


def structures_from_labels(labels: Mapping[str, object], region_based: Optional[bool] = None,
                           output_names: Optional[list[str]] = None) -> ModelStructures:
    """Structures of a dataset.json `labels` dict (ints: softmax labels; tuples: sigmoid regions)."""
    if not labels:
        raise BadInputError("The model's dataset.json has no labels.")
    parsed = {}
    for name, value in labels.items():
        try:
            parsed[str(name)] = _as_values(value)
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"dataset.json label {name!r} has value {value!r}; nnU-Net labels are integers or "
                                "lists of integers.") from exc
    ignore = parsed.pop("ignore", None)  # nnU-Net's ignore label: no output channel, not a structure
    if region_based is None:
        region_based = any(isinstance(v, (list, tuple)) and len(v) > 1 for n, v in labels.items() if n != "ignore")
    foreground = {n: v for n, v in parsed.items() if v != (0,) and 0 not in v}
    if not foreground:
        raise BadInputError("The model's dataset.json declares no foreground label.")
    structures: dict[str, Structure] = {}
    if region_based:  # one sigmoid output per foreground region, in dataset.json order
        for i, (name, values) in enumerate(foreground.items()):
            structures[name] = Structure(name, values, (i,), "sum", "region")
    else:  # one softmax output per label, ordered by label value (background included)
        order = sorted(parsed.items(), key=lambda kv: kv[1][0])
        channel_of = {name: i for i, (name, _) in enumerate(order)}
        for name, values in foreground.items():
            structures[name] = Structure(name, values, (channel_of[name],), "sum", "label")
    if output_names is not None and len(output_names) != (len(structures) if region_based else len(parsed)):
        raise BadInputError(f"The analysis has outputs {', '.join(output_names)}, which do not match the model's "
                            f"labels {', '.join(parsed)}.")
    union = tuple(sorted({v for s in structures.values() for v in s.label_values}))
    covering = [n for n, s in structures.items() if s.label_values == union]
    if covering:
        default = covering[0]
    else:
        channels = tuple(c for s in structures.values() for c in s.channels)
        structures[ALL_FOREGROUND] = Structure(ALL_FOREGROUND, union, tuple(sorted(set(channels))),
                                               "max" if region_based else "sum", "union")
        default = ALL_FOREGROUND
    model = ModelStructures(structures=structures, default=default, region_based=region_based,
                            ignore_values=ignore or ())
    model.brats = _brats_roles(model)
    return model


def structures_from_dataset_json(dataset_json: Mapping) -> ModelStructures:
    return structures_from_labels(dataset_json.get("labels") or {})


def structures_from_summary(summary: Mapping) -> ModelStructures:
    """Structures of an analysis folder's summary.json (the model's labels are recorded in it)."""
    labels = (summary.get("model") or {}).get("labels")
    outputs = list(summary.get("outputs") or [])
    region_based = bool(summary.get("region_based"))
    if labels:
        return structures_from_labels(labels, region_based, outputs)
    # An analysis without the model's labels: label models name their outputs in label order.
    if region_based:
        known = {"whole_tumor": (1, 2, 3, 4), "tumor_core": (1, 3, 4), "enhancing_tumor": (4,)}
        if set(outputs) <= set(known):
            return structures_from_labels({n: list(known[n]) for n in outputs}, True)
        raise BadInputError("This analysis does not record the model's labels (summary.json model.labels); "
                            "analyse the case again to review or evaluate it.")
    return structures_from_labels({n: i for i, n in enumerate(outputs)}, False)


def _brats_roles(model: ModelStructures) -> dict[str, str]:
    """WT/TC/ET of a BraTS model, recognised by its region or label names; {} for any other model."""
    names = {_norm(n): n for n in model.structures if n != ALL_FOREGROUND}
    if model.region_based:
        roles = {}
        for role, aliases in _REGION_ROLES.items():
            hit = [names[a] for a in aliases if a in names]
            if hit:
                roles[role] = hit[0]
        return roles if {"WT", "ET"} <= set(roles) else {}
    edema = [n for k, n in names.items() if k in _EDEMA]
    enhancing = [n for k, n in names.items() if k in _ENHANCING]
    core = [n for k, n in names.items() if k in _CORE_OTHER]
    if len(edema) != 1 or len(enhancing) != 1 or not core or len(edema) + len(enhancing) + len(core) != len(names):
        return {}
    # Label models have no WT/TC structures of their own: add them as unions of their labels.
    whole = model.get(None)
    tc_values = tuple(sorted({v for n in (*core, *enhancing) for v in model.structures[n].label_values}))
    tc_channels = tuple(sorted({c for n in (*core, *enhancing) for c in model.structures[n].channels}))
    model.structures["tumor_core"] = Structure("tumor_core", tc_values, tc_channels, "sum", "union")
    if whole.name == ALL_FOREGROUND:  # name the union for what it is
        model.structures.pop(ALL_FOREGROUND)
        model.structures["whole_tumor"] = Structure("whole_tumor", whole.label_values, whole.channels, "sum", "union")
        model.default = "whole_tumor"
    return {"WT": model.default, "TC": "tumor_core", "ET": enhancing[0]}


def detect_convention(model: ModelStructures) -> Optional[str]:
    """The BraTS convention whose WT/TC/ET values the model's own WT/TC/ET have, or None."""
    regions = model.brats_regions()
    if not regions:
        return None
    values = {role: s.label_values for role, s in regions.items()}
    for key, convention in BRATS_CONVENTIONS.items():
        if all(convention["regions"][role] == v for role, v in values.items()):
            return key
    return None


@dataclass(frozen=True)
class EvaluationRegion:
    """A region scored against a reference: the model's structure, and its values in the reference."""

    name: str
    structure: Structure
    reference_values: tuple[int, ...]

    def reference_mask(self, reference: np.ndarray) -> np.ndarray:
        return np.isin(reference, self.reference_values)


def evaluation_regions(model: ModelStructures, names: Optional[list[str]] = None,
                       convention: Optional[str] = None) -> dict[str, EvaluationRegion]:
    """Regions to score: WT/TC/ET for BraTS models (reference values from `convention`, else the model's own
    label space), otherwise every structure of the model; `names` picks some of them."""
    brats = model.brats_regions()
    key = resolve_convention(convention) if convention else None
    if key and not brats:
        # a model with generic label names, declared to be in a BraTS convention: its values are the convention's
        regions = BRATS_CONVENTIONS[key]["regions"]
        brats = {role: _structure_for_values(model, role, values) for role, values in regions.items()}
    if names is None or [n.lower() for n in names] == ["auto"]:
        names = list(brats) if brats else model.names
    out = {}
    for name in names:
        if name.upper() in brats:
            structure = brats[name.upper()]
            values = BRATS_CONVENTIONS[key]["regions"][name.upper()] if key else structure.label_values
            out[name.upper()] = EvaluationRegion(name.upper(), structure, values)
        else:
            if key:
                raise BadInputError(f"Region {name!r} is not one of WT, TC, ET of the {key} convention.")
            structure = model.get(name)
            out[structure.name] = EvaluationRegion(structure.name, structure, structure.label_values)
    return out


def _structure_for_values(model: ModelStructures, role: str, values: tuple[int, ...]) -> Structure:
    """A union structure of a label model's labels whose values are `values` (for a declared convention)."""
    matching = [s for s in model.structures.values() if s.label_values == values]
    if matching:
        return matching[0]
    if model.region_based:
        raise BadInputError(f"The model has no region with the label values {list(values)} of {role}.")
    members = [s for s in model.structures.values() if s.kind == "label" and set(s.label_values) <= set(values)]
    channels = tuple(sorted({c for s in members for c in s.channels}))
    if not channels:
        raise BadInputError(f"The model has no label with the values {list(values)} of {role}.")
    return Structure(role, values, channels, "sum", "union")


def reference_label_check(reference_values: set[int], allowed: set[int], case: str, model_labels: str) -> None:
    """Refuse a reference with label values the regions are not defined on, naming them."""
    unknown = sorted(reference_values - allowed - {0})
    if unknown:
        raise BadInputError(f"Case {case}: the reference has label values {unknown}, which {model_labels} does "
                            "not define; pass --label-convention if it uses another BraTS convention "
                            "(brats2013, brats2021, brats2023), or relabel it.")


def describe_labels(model: ModelStructures, convention: Optional[str] = None) -> str:
    """The label values a reference may hold, in words, for error messages."""
    if convention:
        key = resolve_convention(convention)
        return f"the {BRATS_CONVENTIONS[key]['title']} convention"
    if model.region_based:
        parts = [f"{s.name} = {','.join(map(str, s.label_values))}" for s in model.structures.values()
                 if s.kind == "region"]
        return "the model's regions (" + "; ".join(parts) + ")"
    parts = [f"{s.label_values[0]} {s.name}" for s in model.structures.values() if s.kind == "label"]
    return "the model's labels (" + ", ".join(parts) + ")"


def reference_values_allowed(model: ModelStructures, convention: Optional[str] = None) -> set[int]:
    if convention:
        return set(BRATS_CONVENTIONS[resolve_convention(convention)]["labels"].values())
    return set(model.label_values) | set(model.ignore_values)


def convert_labels(label_map: np.ndarray, source: str, target: str) -> np.ndarray:
    """Relabel a BraTS label map from one convention to another (2013's non-enhancing joins the core)."""
    src, dst = BRATS_CONVENTIONS[resolve_convention(source)], BRATS_CONVENTIONS[resolve_convention(target)]
    role = {"necrosis": "core", "non_enhancing": "core", "NCR": "core", "edema": "edema", "ED": "edema",
            "enhancing": "enhancing", "ET": "enhancing"}
    dst_value = {}
    for name, value in dst["labels"].items():
        dst_value.setdefault(role[name], value)
    out = np.zeros_like(label_map)
    for name, value in src["labels"].items():
        out[label_map == value] = dst_value[role[name]]
    return out


def as_evaluation_regions(regions, model: ModelStructures) -> dict[str, EvaluationRegion]:
    """Regions as evaluation takes them: names of the model's structures (or WT/TC/ET of a BraTS model), a mapping
    name -> label values (the same values in prediction and reference), or EvaluationRegions as they are."""
    if isinstance(regions, Mapping):
        out = {}
        for name, spec in regions.items():
            if isinstance(spec, EvaluationRegion):
                out[name] = spec
                continue
            values = _as_values(spec)
            try:
                structure = model.get(name)
            except BadInputError:
                structure = None
            if structure is None or structure.label_values != values:
                structure = _structure_for_values(model, name, values)
            out[name] = EvaluationRegion(name, structure, values)
        return out
    return evaluation_regions(model, None if regions is None else list(regions))
