"""nnU-Net v2 inference that keeps the members' spread: segmentation + uncertainty in one pass.

The label map and mean probabilities come out of the same computation as `nnUNetv2_predict`
(nnU-Net's preprocessing, sliding-window order, float32 mirror averaging, float16 logit
accumulation, fold averaging and export), so they match nnU-Net's own output. Alongside, every
member (each mirror flip, each fold, each dropout sample) is streamed into `PatchMembers` /
`VolumeStatistics` for the uncertainty maps, which are resampled back like nnU-Net's
probabilities.
"""

from __future__ import annotations

import itertools
import time
from typing import Callable

import numpy as np
import torch

from ..data.case_images import AnalysisResult, CaseImages, same_geometry  # noqa: F401  (re-exported)
from ..errors import BadInputError, BadModelError, CancelledError, OutOfMemoryError
from .analysis_settings import DEFAULT_DEVICE, DEFAULT_SETTINGS, MEMBER_KINDS, AnalysisSettings
from .member_statistics import PatchMembers, VolumeStatistics
from .model_folder import ModelFolder, check_channels, load_checkpoint

ProgressCallback = Callable[[float, str], None]


def resolve_device(device: str = DEFAULT_DEVICE) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BadInputError(f"Unknown device {device!r}; use auto, cpu, cuda or mps.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError("Device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto.")
    return dev


def _build_network(trainer_class, plans_manager, configuration_manager, n_in: int, n_out: int) -> torch.nn.Module:
    """nnU-Net's architecture builder; its signature changed in nnunetv2 2.6, so support both."""
    import inspect

    if "plans_manager" in inspect.signature(trainer_class.build_network_architecture).parameters:
        return trainer_class.build_network_architecture(plans_manager, configuration_manager, n_in, n_out,
                                                        enable_deep_supervision=False)
    return trainer_class.build_network_architecture(
        configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import, n_in, n_out, enable_deep_supervision=False)


def _enable_dropout(network: torch.nn.Module, on: bool) -> int:
    n = 0
    for module in network.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.train(on)
            n += 1
    return n


class MemberPredictor:
    """Runs a trained nnU-Net model and streams its members' statistics."""

    def __init__(self, model: ModelFolder, settings: AnalysisSettings = DEFAULT_SETTINGS):
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        unknown = set(settings.members) - set(MEMBER_KINDS)
        if unknown:
            raise BadInputError(f"Unknown member kind(s) {sorted(unknown)}; choose from {', '.join(MEMBER_KINDS)}.")
        self.model = model
        self.members = tuple(settings.members)
        self.device = resolve_device(settings.device)
        self.seed = settings.seed
        self.cpu_fallback = settings.cpu_fallback
        self.notes: list[str] = []
        if settings.device == "auto" and self.device.type == "cpu":
            self.notes.append("no GPU found: running on the CPU (slower, same results)")
        self.plans_manager = PlansManager(model.plans)
        self.configuration_manager = self.plans_manager.get_configuration(model.configuration)
        self.label_manager = self.plans_manager.get_label_manager(model.dataset_json)
        checkpoints = [load_checkpoint(model.checkpoint_path(f), trust_model=settings.trust_model) for f in model.folds]
        n_in = determine_num_input_channels(self.plans_manager, self.configuration_manager, model.dataset_json)
        n_out = self.label_manager.num_segmentation_heads
        self.networks = []
        for ckpt in checkpoints:
            net = _build_network(nnUNetTrainer, self.plans_manager, self.configuration_manager, n_in, n_out)
            try:
                net.load_state_dict(ckpt["network_weights"])
            except RuntimeError as exc:
                raise BadModelError(f"The checkpoint does not fit the network in plans.json: {exc}") from exc
            self.networks.append(net.to(self.device).eval())
        # nnU-Net's test-time mirroring (on by default, as in nnUNetv2_predict; off = its --disable_tta).
        self.mirror_axes = checkpoints[0].get("inference_allowed_mirroring_axes") if settings.tta else None
        self.dropout_samples = 0
        if "dropout" in self.members:
            n_dropout = _enable_dropout(self.networks[0], False)
            if n_dropout and model.has_dropout:
                self.dropout_samples = int(settings.dropout_samples)
            else:
                self.notes.append("dropout members unavailable: this network has no dropout layers "
                                  "(default nnU-Net plans use dropout_op None); no dropout samples were drawn")
        if "flips" in self.members and not self.mirror_axes:
            self.notes.append("flip members unavailable: " + ("test-time mirroring is disabled" if not settings.tta else
                                                              "the checkpoint allows no mirroring at inference"))
        # nnU-Net's own predictor object, used for its slicers and export helpers (never for loading).
        self.nn = nnUNetPredictor(tile_step_size=settings.tile_step_size, use_gaussian=True, use_mirroring=True,
                                  perform_everything_on_device=False, device=self.device, verbose=False,
                                  verbose_preprocessing=False, allow_tqdm=False)
        self.nn.manual_initialization(self.networks[0], self.plans_manager, self.configuration_manager,
                                      [c["network_weights"] for c in checkpoints], model.dataset_json,
                                      "nnUNetTrainer", self.mirror_axes)

    def to_device(self, device: torch.device) -> None:
        previous, self.device = self.device, device
        self.networks = [net.to(device) for net in self.networks]
        self.nn.device = device
        if previous.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()  # give back what the failed attempt held on the GPU

    # -- member evaluation on one patch, in nnU-Net's order and precision ------------------------
    def _mirror_members(self, net: torch.nn.Module, x: torch.Tensor, sink: PatchMembers | None) -> torch.Tensor:
        """nnU-Net's `_internal_maybe_mirror_and_predict`, streaming each flip to `sink`."""
        self._check_cancel()
        prediction = net(x)
        if sink is not None:
            sink.add(prediction[0])
        if self.mirror_axes:
            axes = [m + 2 for m in self.mirror_axes]
            combos = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
            for ax in combos:
                self._check_cancel()  # per forward pass: a cancel is seen within about a second
                flipped = torch.flip(net(torch.flip(x, ax)), ax)
                if sink is not None:
                    sink.add(flipped[0])
                prediction += flipped
            prediction /= len(combos) + 1
        return prediction

    _cancel: Callable[[], bool] | None = None

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel():
            raise CancelledError("Analysis cancelled; nothing was written.")

    @torch.inference_mode()
    def predict_preprocessed(self, data: torch.Tensor, progress: ProgressCallback | None = None,
                             cancel: Callable[[], bool] | None = None) -> tuple[torch.Tensor, dict]:
        """Logits as nnU-Net computes them, plus the member statistics (both in preprocessed space)."""
        from acvl_utils.cropping_and_padding.padding import pad_nd_image
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian

        patch_size = self.configuration_manager.patch_size
        padded, revert = pad_nd_image(data, patch_size, "constant", {"value": 0}, True, None)
        slicers = self.nn._internal_get_sliding_window_slicers(padded.shape[1:])
        n_heads = self.label_manager.num_segmentation_heads
        gaussian = compute_gaussian(tuple(patch_size), sigma_scale=1.0 / 8, value_scaling_factor=10, device=self.device)
        fold_logits = [torch.zeros((n_heads, *padded.shape[1:]), dtype=torch.half) for _ in self.networks]
        n_predictions = torch.zeros(padded.shape[1:], dtype=torch.half)
        stats = VolumeStatistics.zeros(n_heads, tuple(padded.shape[1:]))
        region_based = self.label_manager.has_regions
        use_flips = "flips" in self.members and bool(self.mirror_axes)
        generator_seed = self.seed
        self._cancel = cancel
        for i, sl in enumerate(slicers):
            self._check_cancel()
            x = torch.clone(padded[sl][None], memory_format=torch.contiguous_format).to(self.device)
            patch = PatchMembers(region_based)
            for k, net in enumerate(self.networks):
                folds_as_members = "folds" in self.members or k == 0
                sink = patch if (use_flips and folds_as_members) else None
                prediction = self._mirror_members(net, x, sink)
                if sink is None and folds_as_members:
                    patch.add(prediction[0])
                prediction = prediction[0].to("cpu")
                prediction *= gaussian.cpu()
                fold_logits[k][sl] += prediction
                if self.dropout_samples and folds_as_members:
                    _enable_dropout(net, True)
                    try:
                        for _ in range(self.dropout_samples):
                            torch.manual_seed(generator_seed)
                            generator_seed += 1
                            if use_flips:
                                self._mirror_members(net, x, patch)
                            else:
                                patch.add(self._mirror_members(net, x, None)[0])
                    finally:
                        _enable_dropout(net, False)
            n_predictions[sl[1:]] += gaussian.cpu()
            stats.add_patch(sl, patch, gaussian.cpu())
            if progress is not None:
                progress((i + 1) / len(slicers), f"sliding window {i + 1}/{len(slicers)} ({patch.n} members)")
        prediction = None
        for logits in fold_logits:
            torch.div(logits, n_predictions, out=logits)
            if torch.any(torch.isinf(logits)):
                raise RuntimeError("Encountered inf in predicted logits (nnU-Net's float16 accumulation overflowed).")
            logits = logits[(slice(None), *revert[1:])]
            prediction = logits if prediction is None else prediction + logits
        if len(fold_logits) > 1:
            prediction /= len(fold_logits)
        maps = stats.finalize(region_based)
        maps = {k: v[(slice(None), *revert[1:])] for k, v in maps.items()}
        return prediction, {"maps": maps, "n_members": stats.n_members}

    def analyze(self, case: CaseImages, progress: ProgressCallback | None = None,
                cancel: Callable[[], bool] | None = None) -> AnalysisResult:
        """Preprocess like nnU-Net, predict with members, export back to the input geometry."""
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        start = time.time()
        check_channels(self.model, len(case.arrays))
        case.validate()
        report = progress or (lambda f, m: None)
        report(0.0, "preprocessing")
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        image = np.stack(case.arrays).astype(np.float32)
        props = {"spacing": list(case.spacing)[::-1]}
        data, _, props = preprocessor.run_case_npy(image, None, props, self.plans_manager,
                                                   self.configuration_manager, self.model.dataset_json)
        data = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
        def window_progress(fraction: float, message: str) -> None:
            report(0.05 + 0.85 * fraction, message)

        try:
            logits, extra = self.predict_preprocessed(data, window_progress, cancel)
        except torch.OutOfMemoryError as exc:
            if not self.cpu_fallback or self.device.type == "cpu":
                raise OutOfMemoryError(
                    f"The {self.device.type.upper()} device ran out of memory for this case. Run on the CPU "
                    "(--device cpu), or allow the automatic retry on the CPU (--cpu-fallback).") from exc
            self.notes.append(f"{self.device.type} ran out of memory: retried on the CPU")
            self.to_device(torch.device("cpu"))
            logits, extra = self.predict_preprocessed(data, window_progress, cancel)
        report(0.92, "resampling to the input geometry")
        seg, probs = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, self.plans_manager, self.configuration_manager, self.label_manager, props, True)
        maps = self._maps_to_input_geometry(extra["maps"], props)
        report(1.0, "done")
        members = {"kinds": [m for m in self.members if (m != "dropout" or self.dropout_samples)
                             and (m != "flips" or self.mirror_axes)],
                   "folds": list(self.model.folds), "mirror_axes": list(self.mirror_axes or []),
                   "dropout_samples": self.dropout_samples, "n_members": extra["n_members"], "notes": self.notes}
        return AnalysisResult(label_map=seg, probabilities=probs, uncertainty=maps,
                              output_names=self._output_names(), region_based=self.label_manager.has_regions,
                              members=members, seconds=time.time() - start)

    def _output_names(self) -> list[str]:
        names = self.model.output_names
        return names if len(names) == self.label_manager.num_segmentation_heads else \
            [f"output_{i}" for i in range(self.label_manager.num_segmentation_heads)]

    def _maps_to_input_geometry(self, maps: dict[str, torch.Tensor], props: dict) -> dict[str, np.ndarray]:
        """Resample, un-crop and un-transpose like nnU-Net's probability export."""
        from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

        names, arrays = zip(*maps.items())
        sizes = [a.shape[0] for a in arrays]
        stacked = torch.cat(list(arrays), 0)
        spacing_t = [props["spacing"][i] for i in self.plans_manager.transpose_forward]
        resampled = self.configuration_manager.resampling_fn_probabilities(
            stacked, props["shape_after_cropping_and_before_resampling"], self.configuration_manager.spacing, spacing_t)
        resampled = torch.as_tensor(resampled, dtype=torch.float32)
        full = torch.zeros((resampled.shape[0], *props["shape_before_cropping"]), dtype=torch.float32)
        full = insert_crop_into_image(full, resampled, props["bbox_used_for_cropping"])
        full = full.numpy().transpose([0] + [i + 1 for i in self.plans_manager.transpose_backward])
        out, start = {}, 0
        for name, size in zip(names, sizes):
            block = np.ascontiguousarray(full[start:start + size])
            out[name] = block if name.startswith("member_") else block[0]
            start += size
        return out

