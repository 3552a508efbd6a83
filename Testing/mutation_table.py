"""The named mutations: for each README guarantee, the smallest realistic break and the test that must catch it.

Each entry quotes the README's words it protects (`claim`, found in README.md up to line breaks), names the
file, the exact `old` snippet (found exactly once there, or the mutation is stale) and its replacement `new`,
and the pytest node ids that must fail once `new` is in place. `scripts/run_mutations.py` applies each one to a
scratch copy of the checkout and runs only its tests; `Testing/test_mutation_table.py` checks in seconds that
every snippet, test and claim still exists, so a refactor cannot silently disable a mutation.
"""

from __future__ import annotations

from dataclasses import dataclass

LIB = "IWUOSegmentation/IWUOSegmentationLib"


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str  # the README's words (whitespace-insensitive substring of README.md)
    file: str  # relative to the repository root
    old: str  # exact snippet, found exactly once in `file`
    new: str
    tests: tuple[str, ...]  # pytest node ids (relative to the repository root); each must fail
    note: str = ""  # what the break does, when the snippets do not say it


T_INFERENCE = "Testing/test_inference.py"
T_FAULTS = "Testing/test_fault_injection.py"
T_MODELS = "Testing/test_model_folder.py"
T_EXIT = "Testing/test_cli_exit_codes.py"
T_LEARN = "Testing/test_learn_from_corrections.py"
T_WIRING = "Testing/test_calibration_wiring.py"
AGREEMENT = f"{T_INFERENCE}::test_label_map_and_probabilities_match_nnunet_predict"
STREAMED = f"{T_INFERENCE}::test_streamed_member_statistics_equal_the_stacked_members"
REPLAY = "Testing/test_replay_and_ranking.py::test_replay_equals_brute_force_on_random_orderings"
HOSTILE_IMAGES = f"{T_FAULTS}::test_hostile_images_get_exit_2_and_one_line"
HOSTILE_MODELS = f"{T_FAULTS}::test_hostile_model_zips_and_checkpoints_get_exit_3_and_never_run_code"
DAMAGED = f"{T_FAULTS}::test_damaged_analysis_and_budget_log_are_refused_or_skipped_clearly"
IDENTITY_RULE = "Testing/test_analysis_identity.py::test_the_rule_names_what_differs"
WEIGHTS = f"{T_LEARN}::test_the_fine_tune_starts_from_every_pretrained_tensor"
T_ATOMIC = "Testing/test_atomic_files.py"
T_STATS = "Testing/test_evaluation_statistics.py"
T_DEFAULT = "Testing/test_default_ranking.py"
T_EXPERT = "Testing/test_correcting_expert.py"
STOCK_SLICER_IMPORT = "Testing/test_torch_free.py::test_module_file_and_every_gui_module_import_with_only_stock_slicer"
FSYNCED = "beside the target, fsynced, renamed over it, then the folder fsynced where the OS allows"
STOCK_SLICER = "runs in a stock Slicer (numpy, scipy, SimpleITK only)"
HOLM = "Wilcoxon signed-rank tests on per-case AUBC, Holm-corrected over the ground-truth-free rankings"
NOTICED = "it is noticed when it reaches more than 4 mm (beyond the inter-rater band) and covers at least 16 mm²"
EXPERT_TOLERANCE = "of at least 16 mm², reaching more than 4 mm beyond the true boundary"
NOTICED_BLOB = ("Testing/test_rankings.py::test_noticed_gain_orders_a_far_false_positive_blob_before_a_thin_boundary_"
                "band_as_a_correcting_expert_does")

MUTATIONS: tuple[Mutation, ...] = (
    # -- the same computation as nnUNetv2_predict ----------------------------------------------------------------
    Mutation(
        "logits-accumulated-in-float32",
        "float32 mirror averaging, **float16** logit accumulation",
        f"{LIB}/nnunet/inference.py",
        "fold_logits = [torch.zeros((n_heads, *padded.shape[1:]), dtype=torch.half) for _ in self.networks]",
        "fold_logits = [torch.zeros((n_heads, *padded.shape[1:]), dtype=torch.float32) for _ in self.networks]",
        (AGREEMENT,),
        "the sliding-window sum kept in float32 where nnU-Net keeps float16: probabilities drift from nnU-Net's"),
    Mutation(
        "mirror-average-in-float16",
        "float32 mirror averaging, **float16** logit accumulation",
        f"{LIB}/nnunet/inference.py",
        "        prediction = net(x)\n",
        "        prediction = net(x).half()\n",
        (AGREEMENT,),
        "the flips summed and averaged in float16 instead of nnU-Net's float32"),
    Mutation(
        "seven-flips-not-eight",
        "16 members (8 flips × 2 folds)",
        f"{LIB}/nnunet/inference.py",
        "combos = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]",
        "combos = [c for i in range(len(axes) - 1) for c in itertools.combinations(axes, i + 1)]",
        (f"{T_INFERENCE}::test_members_and_maps_are_reported",),
        "the flip of all three axes is left out"),
    Mutation(
        "welford-m2-update",
        "equal those of all members held at once, for region and label models",
        f"{LIB}/nnunet/member_statistics.py",
        "self.m2 += delta * (p - self.mean)",
        "self.m2 += delta * delta",
        (f"{STREAMED}[region model]",),
        "Welford's M2 updated with the old mean twice (the textbook slip)"),
    Mutation(
        "sample-variance-instead-of-the-members",
        "equal those of all members held at once, for region and label models",
        f"{LIB}/nnunet/member_statistics.py",
        "self.variance[sl] += patch.m2 / patch.n * g",
        "self.variance[sl] += patch.m2 / (patch.n - 1) * g",
        (f"{STREAMED}[label model]",)),
    # -- analyses are reused only for their own case and model -------------------------------------------------
    Mutation(
        "identity-grid-only",
        "another patient (even on the same grid), swapped channels or another model are refused",
        f"{LIB}/data/analysis_identity.py",
        'if recorded.get("voxels_sha256") != expected.get("voxels_sha256"):',
        'if recorded.get("size_xyz") != expected.get("size_xyz"):',
        (IDENTITY_RULE, f"{T_EXIT}::test_exit_2_for_an_analysis_of_another_case_on_the_same_grid"),
        "the voxels are no longer compared, only the grid"),
    Mutation(
        "identity-model-ignored",
        "another patient (even on the same grid), swapped channels or another model are refused",
        f"{LIB}/data/analysis_identity.py",
        "differences = identity_differences(recorded, inputs, model, first_inputs_only)",
        "differences = identity_differences(recorded, inputs, None, first_inputs_only)",
        (IDENTITY_RULE,)),
    Mutation(
        "identity-older-analysis-let-through",
        "an analysis written before this check is refused with the advice to analyse again (there is no override)",
        f"{LIB}/data/analysis_identity.py",
        '    if not recorded or recorded.get("version") != IDENTITY_VERSION:\n',
        '    if not recorded:\n        return\n    if recorded.get("version") != IDENTITY_VERSION:\n',
        (IDENTITY_RULE,)),
    Mutation(
        "damaged-summary-not-named",
        "a damaged analysis folder or `summary.json` is refused as damaged",
        f"{LIB}/data/analysis_identity.py",
        "    except json.JSONDecodeError as exc:\n        raise BadInputError(f\"The analysis folder",
        "    except OSError as exc:\n        raise BadInputError(f\"The analysis folder",
        (DAMAGED,)),
    # -- one writer per review folder ----------------------------------------------------------------------------
    Mutation(
        "folder-lock-shared",
        "Opening a review takes an exclusive OS lock on the folder",
        f"{LIB}/storage/folder_lock.py",
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)",
        ("Testing/test_review_lock.py::test_second_opener_is_refused_with_the_holder_named_and_a_killed_holder_"
         "leaves_no_stale_lock",)),
    Mutation(
        "lock-holder-not-found",
        "is told who holds it (front end, host, process id, since when)",
        f"{LIB}/storage/folder_lock.py",
        'atomic_write_text(self.folder / f"{self.name}.json", json.dumps(asdict(holder)))',
        'atomic_write_text(self.folder / f"{self.name}.holder.json", json.dumps(asdict(holder)))',
        ("Testing/test_review_lock.py::test_second_opener_is_refused_with_the_holder_named_and_a_killed_holder_"
         "leaves_no_stale_lock",),
        "the holder is written where the next opener does not look: 'holder unknown'"),
    # -- cut files are refused -----------------------------------------------------------------------------------
    Mutation(
        "cut-gzip-eof-not-caught",
        "a cut or corrupt `.nii.gz` is refused when read",
        f"{LIB}/storage/atomic_files.py",
        "except (EOFError, gzip.BadGzipFile, zlib.error) as exc:",
        "except (gzip.BadGzipFile, zlib.error) as exc:",
        (HOSTILE_IMAGES,),
        "a gzip stream cut short raises EOFError, which then escapes as an internal error"),
    Mutation(
        "cut-file-check-skipped",
        "a cut or corrupt `.nii.gz` is refused when read",
        f"{LIB}/storage/atomic_files.py",
        'if not path.name.endswith(".gz"):',
        'if not path.name.endswith(".gzip"):',
        (HOSTILE_IMAGES,)),
    # -- hostile model files ---------------------------------------------------------------------------------------
    Mutation(
        "checkpoint-loaded-with-pickles",
        "checkpoints load with `weights_only=True` and an allow-list",
        f"{LIB}/nnunet/model_folder.py",
        'checkpoint = torch.load(path, map_location="cpu", weights_only=True)',
        'checkpoint = torch.load(path, map_location="cpu", weights_only=False)',
        (f"{T_MODELS}::test_malicious_checkpoint_is_refused_without_running_its_code",)),
    Mutation(
        "checkpoint-trusted-by-default",
        "pickled code: exit code 3 unless `--trust-model`",
        f"{LIB}/nnunet/model_folder.py",
        "def load_checkpoint(path: str | os.PathLike, trust_model: bool = False) -> dict:",
        "def load_checkpoint(path: str | os.PathLike, trust_model: bool = True) -> dict:",
        (f"{T_MODELS}::test_malicious_checkpoint_is_refused_without_running_its_code",),
        "every caller that does not say otherwise trusts the pickles (the command line passes its option explicitly)"),
    Mutation(
        "zip-slip-dotdot",
        "model zips with absolute paths, `..`, links, or that would unpack to 100× their size (a zip bomb) are "
        "refused before anything is unpacked",
        f"{LIB}/nnunet/model_folder.py",
        'if info.filename.startswith(("/", "\\\\")) or name.is_absolute() or ".." in name.parts \\',
        'if info.filename.startswith(("/", "\\\\")) or name.is_absolute() \\',
        (f"{T_MODELS}::test_model_zip_installs_and_unsafe_zips_are_refused",)),
    Mutation(
        "zip-link-mode-mask",
        "model zips with absolute paths, `..`, links, or that would unpack to 100× their size (a zip bomb) are "
        "refused before anything is unpacked",
        f"{LIB}/nnunet/model_folder.py",
        "mode = (info.external_attr >> 16) & 0o170000",
        "mode = (info.external_attr >> 16) & 0o7777",
        (f"{T_MODELS}::test_model_zip_installs_and_unsafe_zips_are_refused",),
        "the permission bits instead of the file type: a symbolic link is no longer recognised"),
    Mutation(
        "zip-bomb-compressed-size",
        "model zips with absolute paths, `..`, links, or that would unpack to 100× their size (a zip bomb) are "
        "refused before anything is unpacked",
        f"{LIB}/nnunet/model_folder.py",
        "unpacked = sum(info.file_size for info in archive.infolist())",
        "unpacked = sum(info.compress_size for info in archive.infolist())",
        (f"{T_MODELS}::test_a_zip_bomb_is_refused_before_anything_is_unpacked", HOSTILE_MODELS)),
    # -- cancel ------------------------------------------------------------------------------------------------------
    Mutation(
        "inference-cancel-not-wired",
        "*Cancel* stops it within seconds",
        f"{LIB}/nnunet/inference.py",
        "        self._cancel = cancel\n",
        "        self._cancel = None\n",
        (f"{T_INFERENCE}::test_cancel_writes_nothing",)),
    Mutation(
        "cancel-file-ignored",
        "*Cancel* stops it within seconds (through a cancel file and the process's stdin",
        f"{LIB}/cli/progress.py",
        "self.cancel_file = Path(cancel_file) if cancel_file else None",
        "self.cancel_file = None",
        ("Testing/test_analysis_process.py::test_cancel_reaches_the_real_child_through_a_launcher[cancel_file]",)),
    Mutation(
        "stdin-eof-not-requested",
        "*Cancel* stops it within seconds (through a cancel file and the process's stdin",
        f"{LIB}/cli/analysis_process.py",
        '"--cancel-on-stdin-eof", *(["--calibration"',
        '*(["--calibration"',
        ("Testing/test_analysis_process.py::test_cancel_reaches_the_real_child_through_a_launcher[stdin_eof]",)),
    Mutation(
        "sigterm-not-handled",
        "exit codes: 0 ok, 1 internal error, 2 bad input, 3 bad model, 4 cancelled",
        f"{LIB}/cli/progress.py",
        "for sig in (signal.SIGTERM, signal.SIGINT)}",
        "for sig in (signal.SIGINT,)}",
        (f"{T_EXIT}::test_exit_4_cancelled_by_sigterm_writes_nothing",)),
    # -- the replay is exact -----------------------------------------------------------------------------------------
    Mutation(
        "replay-false-positive-sign",
        "replay exact (= brute-force voxel replay)",
        f"{LIB}/simulation/budget_curves.py",
        "fp = counts.fp.sum() + _cumulative((counts.fp_fixed - counts.fp).astype(np.float64), orders)",
        "fp = counts.fp.sum() + _cumulative((counts.fp - counts.fp_fixed).astype(np.float64), orders)",
        (REPLAY,)),
    Mutation(
        "replay-expert-taken-as-perfect",
        "replay exact (= brute-force voxel replay)",
        f"{LIB}/ranking/slice_counts.py",
        "tpf, fpf, fnf = _count(corrected, truth, axis)",
        "tpf, fpf, fnf = _count(truth, truth, axis)",
        (REPLAY,)),
    # -- learning from corrections ------------------------------------------------------------------------------------
    Mutation(
        "fine-tune-keeps-its-own-initial-weights",
        "All weights are transferred, the output layers included when the labels are the same",
        f"{LIB}/nnunet/trainer.py",
        "network.load_state_dict({**own, **{k: weights[k] for k in own if k not in differ}})",
        "network.load_state_dict(own)",
        (WEIGHTS,),
        "the network keeps its random initialisation while the record still says 'all layers'"),
    Mutation(
        "fine-tune-drops-the-output-layers",
        "All weights are transferred, the output layers included when the labels are the same",
        f"{LIB}/nnunet/trainer.py",
        "network.load_state_dict({**own, **{k: weights[k] for k in own if k not in differ}})",
        'network.load_state_dict({**own, **{k: weights[k] for k in own if k not in differ and ".seg_layers." not in k}})',
        (WEIGHTS,),
        "nnU-Net's own loader's rule (output layers re-initialised) while the record says 'all layers'"),
    Mutation(
        "leave-one-out-trains-on-the-held-out-case",
        "writes a leave-one-out `splits_final.json` (fold *i* validates on case *i*)",
        f"{LIB}/nnunet/training.py",
        'splits = [{"train": [c for c in cases if c != held], "val": [held]} for held in cases]',
        'splits = [{"train": cases, "val": [held]} for held in cases]',
        (f"{T_LEARN}::test_few_cases_get_leave_one_out_splits",)),
    Mutation(
        "moved-plans-keep-the-old-data-identifier",
        "the model's plans are moved to it as `nnUNetv2_move_plans_between_datasets` does",
        f"{LIB}/nnunet/training.py",
        'config["data_identifier"] = identifier + old[len(source):] if old.startswith(source) else f"{identifier}_{old}"',
        'config["data_identifier"] = old',
        (f"{T_LEARN}::test_pretrained_model_folder_gives_its_plans_and_checkpoint",),
        "preprocessed data of the two plans would share one folder"),
    Mutation(
        "uncorrected-reviews-exported-only-without-the-option",
        "Reviews without any correction are skipped unless `--include-uncorrected`",
        f"{LIB}/review/corrected_dataset.py",
        "if not case.corrected and not include_uncorrected:",
        "if not case.corrected and include_uncorrected:",
        (f"{T_LEARN}::test_a_review_of_a_folder_of_reviews_and_uncorrected_cases_on_request",)),
    Mutation(
        "export-unlogged-difference-reversed",
        "a slice that differs from the prediction without a logged correction",
        f"{LIB}/review/corrected_dataset.py",
        "unlogged = sorted(set(changed_slices) - state.logged_slices)",
        "unlogged = sorted(state.logged_slices - set(changed_slices))",
        (f"{T_LEARN}::test_unlogged_corrections_are_refused",)),
    # -- hostile inputs -------------------------------------------------------------------------------------------------
    Mutation(
        "nan-voxels-not-counted",
        "Hostile inputs get their exit code and one line**: truncated or garbled NIfTI, NaN voxels",
        f"{LIB}/data/case_images.py",
        "bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))",
        "bad = int(np.isinf(a).sum())",
        (f"{T_INFERENCE}::test_bad_inputs_get_clear_errors", HOSTILE_IMAGES),
        "only infinite voxels are refused; NaN ones reach the network"),
    Mutation(
        "thin-volume-accepted",
        "a 1×N×M volume",
        f"{LIB}/data/case_images.py",
        "if min(self.arrays[0].shape) < 2:",
        "if min(self.arrays[0].shape) < 1:",
        (HOSTILE_IMAGES,)),
    Mutation(
        "spacing-upper-bound-loose",
        "implausible voxel spacing (outside 0.001–1000 mm): exit code 2",
        f"{LIB}/data/case_images.py",
        "MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 1e3",
        "MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 1e10",
        (HOSTILE_IMAGES,)),
    # -- exit codes -------------------------------------------------------------------------------------------------
    Mutation(
        "disk-full-exit-1",
        "**Disk full or a read-only folder** is a one-line error (`error: cannot write …`, exit code 2 on the command "
        "line)",
        f"{LIB}/cli/main.py",
        '"Free space (or choose a writable folder) and run again.", file=sys.stderr)\n        return BadInputError.exit_code',
        '"Free space (or choose a writable folder) and run again.", file=sys.stderr)\n        return 1',
        (f"{T_FAULTS}::test_disk_full_on_the_command_line_is_one_line_and_keeps_the_previous_report",)),
    Mutation(
        "internal-error-exit-2",
        "exit codes: 0 ok, 1 internal error, 2 bad input",
        f"{LIB}/cli/main.py",
        "    except Exception:  # an internal error (a FileNotFoundError too: missing user files raise BadInputError)\n"
        "        traceback.print_exc()\n        return 1\n",
        "    except Exception:  # an internal error (a FileNotFoundError too: missing user files raise BadInputError)\n"
        "        traceback.print_exc()\n        return 2\n",
        (f"{T_EXIT}::test_exit_1_internal_error_shows_the_traceback",)),
    Mutation(
        "bad-model-exit-2",
        "exit codes: 0 ok, 1 internal error, 2 bad input, 3 bad model",
        f"{LIB}/errors.py",
        '    """The model folder or zip is incomplete, inconsistent or untrusted."""\n\n    exit_code = 3\n',
        '    """The model folder or zip is incomplete, inconsistent or untrusted."""\n\n    exit_code = 2\n',
        (f"{T_EXIT}::test_exit_3_bad_model",)),
    Mutation(
        "corrupt-log-exit-1",
        "4 cancelled, 5 corrupt log, 6 out of memory",
        f"{LIB}/errors.py",
        '    """A budget log cannot be read back."""\n\n    exit_code = 5\n',
        '    """A budget log cannot be read back."""\n\n    exit_code = 1\n',
        (f"{T_EXIT}::test_exit_5_corrupt_log",)),
    # -- the budget log ---------------------------------------------------------------------------------------------------
    Mutation(
        "garbled-log-bytes-fail-the-read",
        "garbled budget-log lines are skipped and listed in the review report",
        f"{LIB}/review/budget_log.py",
        'lines = raw.decode("utf-8", errors="replace").splitlines()',
        'lines = raw.decode("utf-8").splitlines()',
        (DAMAGED,)),
    Mutation(
        "append-after-a-cut-line-glues-onto-it",
        "a log line cut mid-way is skipped and reported",
        f"{LIB}/review/budget_log.py",
        'handle.write(("\\n" if needs_newline else "") + line)',
        "handle.write(line)",
        ("Testing/test_budget_log.py::test_truncated_last_line_is_reported_skipped_and_appending_resumes",),
        "the first line after a crash is glued onto the cut one and lost with it"),
    Mutation(
        "log-read-from-disk-on-every-edit",
        "a review edit reads the budget log file 0 times after the session started",
        f"{LIB}/review/budget_log.py",
        "        if self._events is None:\n            self._load()\n        self.warnings",
        "        self._load()\n        self.warnings",
        ("Testing/test_budget_log_in_memory.py::test_review_edits_read_the_log_file_zero_times_after_the_session_"
         "started",)),
    # -- the site calibration --------------------------------------------------------------------------------------------
    Mutation(
        "calibration-relabels-without-being-asked",
        "**The label map is unchanged** unless relabelling is asked for",
        f"{LIB}/data/calibration.py",
        '    if relabel:\n        changes["label_map"]',
        '    if True:\n        changes["label_map"]',
        (f"{T_WIRING}::test_iwuo_analyze_applies_the_calibration_records_it_and_keeps_the_label_map",
         "Testing/test_calibration.py::test_calibrated_probabilities_keep_the_label_map_unless_relabelling_is_asked_for"),
        "the label map of the calibrated probabilities written on every calibrated analysis"),
    Mutation(
        "calibration-not-recorded-in-the-summary",
        "`summary.json` of a calibrated analysis records the file",
        f"{LIB}/data/analysis_files.py",
        "        if result.calibration:  #",
        "        if False:  #",
        (f"{T_WIRING}::test_iwuo_analyze_applies_the_calibration_records_it_and_keeps_the_label_map",),
        "calibrated probabilities written with a summary.json that does not say so"),
    Mutation(
        "calibration-of-another-model-accepted",
        "refused, with one line and exit code 2, for any other model",
        f"{LIB}/data/calibration.py",
        "    if calibration.model_key != model_key(identity):",
        "    if False:",
        (f"{T_EXIT}::test_exit_2_for_a_calibration_of_another_model_before_any_network_is_built",
         "Testing/test_calibration.py::test_a_calibration_of_another_model_is_refused"),
        "the model check of every entry point (the command's and CaseAnalyzer's) passes any model's file"),
    Mutation(
        "explicit-calibration-ignored-for-a-saved-analysis",
        "analyses the review folder's case again when no review has begun there",
        f"{LIB}/data/calibration.py",
        "    if option is None:\n        return True\n    why",
        "    if True:\n        return True\n    why",
        (f"{T_WIRING}::test_the_saved_analysis_is_reused_analysed_again_or_refused_for_the_calibration_asked",
         f"{T_WIRING}::test_iwuo_review_analyses_again_for_an_explicit_calibration_until_the_review_has_begun"),
        "any saved analysis reused whatever --calibration names: the review runs on other probabilities than asked"),
    # -- every write is durable: fsynced before its rename, the folder after ---------------------------------------
    Mutation(
        "file-not-fsynced-before-its-rename",
        FSYNCED,
        f"{LIB}/storage/atomic_files.py",
        "        write(tmp)\n        _fsync_file(tmp)\n",
        "        write(tmp)\n",
        (f"{T_ATOMIC}::test_text_is_fsynced_before_its_rename",
         f"{T_ATOMIC}::test_the_corrected_label_map_is_fsynced_before_its_rename"),
        "the temporary file renamed over its target without an fsync: after a power cut the target may be empty "
        "(a SIGKILL keeps the page cache, so the fault suite cannot see it)"),
    Mutation(
        "folder-not-fsynced-after-the-rename",
        FSYNCED,
        f"{LIB}/storage/atomic_files.py",
        "    fsync_folder(path.parent)\n    if done_point:\n",
        "    if done_point:\n",
        (f"{T_ATOMIC}::test_text_is_fsynced_before_its_rename",),
        "the rename itself not made durable"),
    Mutation(
        "analysis-written-in-place",
        "an analysis folder, an exported dataset or an unpacked model is built under a temporary name and swapped in",
        f"{LIB}/data/analysis_files.py",
        '    with folder_swapped_in(out, swap_point="analysis.swap") as built:\n',
        "    from ..storage.atomic_files import make_folder\n\n    for built in (make_folder(out),):\n",
        (f"{T_ATOMIC}::test_an_analysis_that_fails_midway_leaves_the_old_analysis_whole",),
        "the new maps written over the old analysis one by one: a failure midway leaves a mix of the two"),
    # -- save before log ------------------------------------------------------------------------------------------
    Mutation(
        "log-line-before-the-save",
        "Each stroke is saved (the corrected label map, written to a temporary file, fsynced and renamed) before its "
        "budget-log line is written",
        f"{LIB}/mrml/edit_accounting.py",
        "            if changed:\n                try:\n                    self.save(current)\n                except "
        "BaseException:\n                    self.dirty = True\n                    raise\n            self._snapshot = "
        "current\n            merge_changes(self._unlogged, changed)\n        if self._unlogged:\n            "
        "self._log_changes(self._unlogged)\n",
        "            self._snapshot = current\n            merge_changes(self._unlogged, changed)\n        if "
        "self._unlogged:\n            self._log_changes(self._unlogged)\n        if changed:\n            "
        "self.save(current)\n",
        ("Testing/test_review_session.py::test_a_writable_session_saves_each_correction_before_it_logs_it",),
        "the log line written first, then the save: a crash between them counts a correction that is not on disk"),
    Mutation(
        "saved-unlogged-correction-not-recovered",
        "one that was saved but not yet logged when the process died is logged (as `recovered`) at the next start",
        f"{LIB}/mrml/review_session.py",
        "self.edits.slice_changes(prediction, self.accounted_masks()).items()",
        "self.edits.slice_changes(prediction, prediction).items()",
        ("Testing/test_review_workflow.py::test_corrections_are_saved_before_logged_and_recovered_after_a_crash",),
        "the saved corrections compared with the prediction itself: a correction cut off before its log line is "
        "never counted"),
    Mutation(
        "failed-save-not-retried",
        "an open review retries the save and the log line at the next flush",
        f"{LIB}/mrml/edit_accounting.py",
        "                except BaseException:\n                    self.dirty = True\n                    raise\n",
        "                except BaseException:\n                    raise\n",
        (f"{T_FAULTS}::test_disk_full_or_read_only_folder_during_a_review[enospc-corrected.tmp]",),
        "a stroke whose save failed (disk full) is forgotten: never saved, never logged"),
    Mutation(
        "read-only-edits-kept",
        "its edits are undone and it writes no log line",
        f"{LIB}/mrml/edit_accounting.py",
        "            self.dirty = False\n            self.adopt(self._snapshot)\n            return 0\n",
        "            self.dirty = False\n            return 0\n",
        ("Testing/test_review_lock.py::test_second_front_end_on_an_open_review_is_refused_or_read_only_and_nothing_is_"
         "lost",),
        "a read-only session's strokes stay on screen as if they were corrections"),
    # -- the module runs in a stock Slicer ---------------------------------------------------------------------------
    Mutation(
        "nnunet-imported-by-a-gui-module",
        STOCK_SLICER,
        f"{LIB}/gui/dependencies.py",
        "import importlib\nimport importlib.util\nimport os\n",
        "import importlib\nimport importlib.util\nimport os\n\nimport nnunetv2  # noqa: F401\n",
        (STOCK_SLICER_IMPORT,),
        "an import of nnU-Net at the top of a gui/ module that the module file imports"),
    Mutation(
        "torch-imported-by-the-module-file",
        STOCK_SLICER,
        "IWUOSegmentation/IWUOSegmentation.py",
        "import qt\nimport slicer\n",
        "import qt\nimport slicer\nimport torch  # noqa: F401\n",
        (STOCK_SLICER_IMPORT,)),
    # -- the statistics -----------------------------------------------------------------------------------------------
    Mutation(
        "holm-left-out-of-the-report",
        HOLM,
        f"{LIB}/simulation/statistics.py",
        "for s, p, p_adj in zip(others, raw, holm(raw)):",
        "for s, p, p_adj in zip(others, raw, raw):",
        (f"{T_STATS}::test_the_reports_time_axis_p_values_are_holm_adjusted_over_the_ground_truth_free_family",),
        "the report's p_holm column (the headline's time axis) holds the raw p-values"),
    Mutation(
        "holm-without-the-step-down-maximum",
        HOLM,
        f"{LIB}/simulation/statistics.py",
        "running = max(running, min(1.0, (m - rank) * p[idx]))",
        "running = min(1.0, (m - rank) * p[idx])",
        (f"{T_STATS}::test_holm_matches_the_step_down_definition",),
        "adjusted p-values no longer monotone in the raw ones"),
    Mutation(
        "oracles-in-the-holm-family",
        HOLM,
        f"{LIB}/simulation/summary.py",
        "    return [s for s in GT_FREE if s in strategies]",
        "    return list(strategies)",
        (f"{T_STATS}::test_the_reports_time_axis_p_values_are_holm_adjusted_over_the_ground_truth_free_family",),
        "the oracles (which use the truth) tested against and counted in the correction"),
    Mutation(
        "wilcoxon-one-sided",
        HOLM,
        f"{LIB}/simulation/statistics.py",
        'return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)',
        'return float(stats.wilcoxon(a, b, zero_method="wilcox", alternative="greater").pvalue)',
        (f"{T_STATS}::test_wilcoxon_matches_scipy_and_the_enumeration_of_sign_flips",),
        "a one-sided test reported as the two-sided one (half the p-value)"),
    # -- the default ranking --------------------------------------------------------------------------------------------
    Mutation(
        "default-ranking-not-the-protocols-pick",
        "by the protocol's rule, the ground-truth-free ranking with the highest primary endpoint on the 20 development "
        "phantoms",
        f"{LIB}/ranking/strategies.py",
        'DEFAULT_RANKING = "noticed_gain"',
        'DEFAULT_RANKING = "impact"',
        (f"{T_DEFAULT}::test_the_default_is_the_protocols_pick_on_the_committed_development_phantoms",)),
    Mutation(
        "product-ranks-by-impact-alone",
        "The product's ranking (Slicer module, browser, demo) is the single constant `DEFAULT_RANKING`",
        f"{LIB}/ranking/strategies.py",
        "strategy: str = DEFAULT_RANKING, limit: Optional[int] = None",
        'strategy: str = "impact", limit: Optional[int] = None',
        (f"{T_DEFAULT}::test_the_product_default_through_rank_case_and_the_review_session",),
        "rank_case without a strategy (iwuo, the module, the browser) orders slices by impact"),
    Mutation(
        "noticed-gain-without-the-reach",
        NOTICED,
        f"{LIB}/ranking/noticed_errors.py",
        'NOTICE_VARIANTS = {"full": (True, True),',
        'NOTICE_VARIANTS = {"full": (False, True),',
        (f"{T_DEFAULT}::test_rank_case_gives_the_hand_computed_order[noticed_gain]", NOTICED_BLOB),
        "the product's noticed gain scored as its no_reach ablation"),
    Mutation(
        "noticed-gain-without-the-size",
        NOTICED,
        f"{LIB}/ranking/noticed_errors.py",
        'NOTICE_VARIANTS = {"full": (True, True),',
        'NOTICE_VARIANTS = {"full": (True, False),',
        (f"{T_DEFAULT}::test_rank_case_gives_the_hand_computed_order[noticed_gain]",),
        "the product's noticed gain scored as its no_size ablation"),
    # -- the correcting expert's tolerance -------------------------------------------------------------------------------
    Mutation(
        "expert-minimum-area-not-applied",
        EXPERT_TOLERANCE,
        f"{LIB}/simulation/experts.py",
        "keep = (pieces.area_mm2 >= tolerance.min_area_mm2) & (pieces.reach_mm > tolerance.distance_tolerance_mm)",
        "keep = pieces.reach_mm > tolerance.distance_tolerance_mm",
        (f"{T_EXPERT}::test_a_slice_without_visible_error_is_untouched_and_costs_only_the_look",),
        "the expert erases a far speck too small to see"),
    Mutation(
        "expert-distance-tolerance-not-applied",
        EXPERT_TOLERANCE,
        f"{LIB}/simulation/experts.py",
        "keep = (pieces.area_mm2 >= tolerance.min_area_mm2) & (pieces.reach_mm > tolerance.distance_tolerance_mm)",
        "keep = pieces.area_mm2 >= tolerance.min_area_mm2",
        (f"{T_EXPERT}::test_the_reference_itself_is_left_exactly_as_it_is",
         f"{T_EXPERT}::test_a_slice_without_visible_error_is_untouched_and_costs_only_the_look"),
        "the expert 'corrects' disagreements inside the inter-rater band, the reference itself included"),
    Mutation(
        "minimum-area-a-quarter",
        NOTICED,
        f"{LIB}/ranking/noticed_errors.py",
        "    min_area_mm2: float = 16.0\n",
        "    min_area_mm2: float = 4.0\n",
        (f"{T_EXPERT}::test_a_slice_without_visible_error_is_untouched_and_costs_only_the_look",
         f"{T_DEFAULT}::test_rank_case_gives_the_hand_computed_order[noticed_gain]"),
        "the 16 mm² both the ranking and the expert assume (one constant) set to 4 mm²"),
    # -- identity checks at the MRML layer; reviews read, never written, by the calibration --------------------------------
    Mutation(
        "mrml-open-skips-the-identity-check",
        "an analysis folder is used only for the images and model it was computed from",
        f"{LIB}/mrml/review_workflow.py",
        '    check_identity(summary, analysis_folder, expected_identity["inputs"], expected_identity["model"])\n',
        "",
        ("Testing/test_analysis_identity.py::test_mrml_layer_refuses_another_patient_on_the_same_grid",),
        "the module and the browser load any analysis into the scene"),
    Mutation(
        "resume-skips-the-identity-check",
        "an analysis folder is used only for the images and model it was computed from",
        f"{LIB}/mrml/review_workflow.py",
        "        check_identity(summary, folder.analysis, [volume_identity(saved.volume)], first_inputs_only=True)\n",
        "",
        ("Testing/test_analysis_identity.py::test_resume_refuses_an_analysis_replaced_by_another_patients",),
        "a saved scene resumed on an analysis replaced by another patient's"),
    Mutation(
        "calibration-locks-the-reviews",
        "Reviews are read only: no lock is taken, no file in a review folder is written",
        f"{LIB}/review/site_calibration.py",
        "    state = read_review_state(folder)\n    check_label_values(state, labels)\n",
        "    from ..storage.folder_lock import lock_folder\n\n    lock = lock_folder(folder.root, \"iwuo calibrate\")  "
        "# noqa: F841\n    state = read_review_state(folder)\n    check_label_values(state, labels)\n",
        ("Testing/test_calibration.py::test_iwuo_calibrate_fits_from_reviews_read_only_even_while_one_is_open",),
        "each review locked while it is read: one open elsewhere cannot be used, and the lock files are written"),
    Mutation(
        "evaluate-calibration-not-applied",
        "is applied to each case's analysis probabilities in memory, the label map and the saved analysis kept, so the "
        "expected Dice, the impact and every ranking are the calibrated ones",
        f"{LIB}/simulation/evaluate_folders.py",
        "        analysis = apply_calibration(config.calibration, analysis)",
        "        analysis = analysis",
        ("Testing/test_evaluate_calibration.py::"
         "test_the_calibration_changes_the_expected_dice_the_replay_uses_and_keeps_the_label_map",),
        "the calibration recorded but the replay ranks on the uncalibrated probabilities"),
    Mutation(
        "evaluate-time-model-not-charged",
        "charges its look time and seconds per mm to the time-axis rankings and the simulated experts",
        f"{LIB}/cli/evaluate.py",
        '                            **({"time_model": time_model} if time_model is not None else {}))',
        "                            )",
        ("Testing/test_evaluate_calibration.py::test_a_fitted_time_model_charges_the_replay_by_its_constants",),
        "the fitted time model read and recorded, the assumed one charged"),
    Mutation(
        "effect-pipelines-left-without-views",
        "the editing tools still work after the layout changes, also one used before it",
        f"{LIB}/web/review_app.py",
        "            self._give_pipelines_their_views(editor.get_effect(effects[name]))\n",
        "",
        ("Testing/test_web_review.py::test_every_channel_as_the_background_and_three_views",),
        "Paint's pipelines made for the new views keep no view, and choosing Paint raises"),
    # -- cancel and the evaluation's lock -----------------------------------------------------------------------------------
    Mutation(
        "case-analyzer-drops-the-cancel",
        "*Cancel* stops it within seconds",
        f"{LIB}/nnunet/analysis.py",
        "result = self.predictor.analyze(case, progress=progress, cancel=cancel)",
        "result = self.predictor.analyze(case, progress=progress, cancel=None)",
        (f"{T_INFERENCE}::test_cancel_writes_nothing",),
        "the one analysis entry point checks the cancel only after the whole inference"),
    Mutation(
        "evaluate-lock-released-at-once",
        "`iwuo evaluate` locks its `--out` folder the same way",
        f"{LIB}/cli/evaluate.py",
        "    lock = _lock_output(out, args.shard, args.merge_only)  # noqa: F841 - held until the command returns\n",
        "    _lock_output(out, args.shard, args.merge_only)\n",
        ("Testing/test_review_lock.py::test_iwuo_evaluate_holds_its_lock_until_the_report_is_written",),
        "the lock object not kept (the 'unused variable' a linter flags): released as soon as it is taken"),
    # -- the import graph ----------------------------------------------------------------------------------------------------
    Mutation(
        "import-up-a-layer",
        "import graph: no cycle, no import up a layer",
        f"{LIB}/errors.py",
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom .storage import atomic_files  # noqa: F401\n",
        ("Testing/test_import_graph.py::test_imports_run_down_the_layers",)),
)
