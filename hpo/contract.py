"""The contract between hpo's core and a trainable: what a trainable receives and declares.

A trainable module (built-in under ``hpo.trainables``, or a user's ``module:function``) is a
:class:`Trainable` (required: ``METRICS`` and the training function) with any of the hooks in
:data:`HOOKS`, each documented there once with what it is for and its default when absent
(``Config``, its parameters, is one: they may come another way). The registry
(hpo.trainables.TrainableInfo) reads a module only through these two, and the core reaches a
trainable only through the registry.

The training function ``train(config, data, settings, report, state)``: ``config`` the trial's
parameters (groups of cases already merged), ``data`` an :class:`hpo.data.ArrayDataset`,
``settings`` a :class:`Settings`, ``report(metrics, state_fn)`` once per epoch with an ``epoch``
key (``state_fn`` builds the checkpoint state, or None), ``state`` the restored checkpoint state.

A user's own training function may instead take ``(config, ctx)`` with an :class:`hpo.Context`
(hpo.trainables.context; the small, stable contract documented in the README), and a user's
own model is a ``build(params, input_shape, n_outputs)`` function (hpo.trainables.model).

This module imports neither torch nor Ray, and nothing of hpo beyond the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# report(metrics, state_fn): state_fn builds the checkpoint state only if the caller saves one
Reporter = Callable[[dict[str, Any], Callable[[], dict[str, Any]] | None], None]

PACK_KEY = "_pack"  # the one key of a packed trial's Tune config: the list of its members
# hpo's own key in a trial's Tune config (hpo.runner.record): {"plan": i} its place in the run's
# plan, {"segment": s} the searcher run it belongs to, and for a trial that continues one cut by
# a stop {"trial": its hpo id, "checkpoint_rel": the checkpoint it starts from, relative to the
# run folder (Settings.run_root), "epoch": that checkpoint's}.
# Never a parameter: the trainable and the tables drop it.
RECORD_KEY = "_hpo"
# in each report after a restore that passed over an unreadable checkpoint: which, and what it used
CHECKPOINT_NOTE = "checkpoint_note"
REPORT_FILE = "report.html"  # the report a run folder keeps of itself (hpo.report)

# Ray's bookkeeping in each result: RAY_KEPT sits in the history table beside the metrics;
# RAY_DROPPED goes nowhere; neither is shown by a tracker as the experiment's metrics (RAY_FIELDS)
RAY_KEPT = ("training_iteration", "time_total_s", "timestamp", "hostname", "node_ip", "pid")
RAY_DROPPED = frozenset({"config", "done", "logged", "checkpoint", "should_checkpoint", "checkpoint_dir_name",
                         "date", "trial_id", "time_this_iter_s", "time_since_restore",
                         "iterations_since_restore", "timesteps_total", "episodes_total", "experiment_tag",
                         "timesteps_since_restore"})
RAY_FIELDS = (*RAY_KEPT, *sorted(RAY_DROPPED))


@dataclass(frozen=True)
class EarlyStop:
    patience: int
    min_delta: float = 0.0


@dataclass(frozen=True)
class Halving:
    """Successive halving inside a pack, at ASHA's rungs."""

    grace_period: int
    reduction_factor: float


@dataclass(frozen=True)
class Settings:
    """Everything a trial needs from the spec besides its own configuration."""

    max_epochs: int
    metric: str  # the selection metric (never a test metric)
    mode: str = "max"  # its direction, decided once by the experiment checks
    threads: int = 1
    checkpoint_every: int = 1
    early_stopping: EarlyStop | None = None
    groups: tuple[str, ...] = ()  # names of groups of cases, merged into the config
    data_key: str | None = None  # lets a reused worker keep its converted tensors
    halving: Halving | None = None  # packs only
    model: str | None = None  # spec `model:` (module:function), for the `model` trainable
    search_path: tuple[str, ...] = ()  # folders user code is imported from (hpo.refs)
    # 1-based epochs after which the trial may be stopped from outside (a scheduler's rungs)
    # and the last: the test set is evaluated on the best-validation weights there and when the
    # trial ends by itself (early stop, divergence). None: at every validation improvement.
    test_epochs: frozenset[int] | None = None
    # the run folder, where a trial continued after a stop finds the checkpoint it starts from
    # (RECORD_KEY's `checkpoint_rel`): a local path, or a bucket URI with its options
    run_root: str | None = None

    @property
    def sign(self) -> float:
        """+1 when the metric is maximized, -1 when minimized: `sign * value` is a score."""
        return 1.0 if self.mode == "max" else -1.0


@dataclass(frozen=True)
class Packing:
    """How a trainable's configurations are packed into one vectorized trial.

    run: "module:function" of the packed training loop,
         ``run(configs, data, settings, report)`` with ``report({"epoch", "members": [...]})``;
    keys: config fields that must be equal within a pack (they fix shapes and the code path);
         None: every field but the per-member ones (PER_MEMBER);
    refuse: config -> the reason this configuration cannot be packed, or None;
    probe: the pack is a torch.func pack of the trainable's own model (`make_model`): before
         Ray starts, hpo.trainables.func_pack.probe builds and times it, and `auto` packs only
         where it is clearly faster than the members one after another.
    """

    run: str
    keys: tuple[str, ...] | None = None
    refuse: Callable[[Any], str | None] | None = None
    probe: bool = False


# config fields a pack holds as per-member tensors (every other field is equal within a pack)
PER_MEMBER = ("lr", "momentum", "nesterov", "weight_decay", "reg_type", "seed")


def rungs(grace_period: int, reduction_factor: float, max_epochs: int, brackets: int = 1) -> list[int]:
    """ASHA's rung milestones, as Ray's AsyncHyperBandScheduler places them (grace_period x
    reduction_factor^(k + bracket), up to and including max_epochs), each as the epoch at which
    a trial reporting once per epoch meets it. The one home of this arithmetic: the scheduler's
    test epochs (hpo.schedulers) and the successive halving inside packs (which halves only
    below max_epochs: every member ends there) both use it."""
    g, out = max(1, min(grace_period, max_epochs)), set()
    for s in range(brackets):
        k = 0
        while (t := g * reduction_factor ** (k + s)) <= max_epochs:
            out.add(math.ceil(t))
            k += 1
    return sorted(out)


def data_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's data order: the same for the same trial seed, new every epoch."""
    return seed * 100_003 + epoch


def without_record(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Tune config without hpo's own key (RECORD_KEY)."""
    return {k: v for k, v in config.items() if k != RECORD_KEY}


def expand_cases(config: dict[str, Any], groups: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The trainable's config: each group's chosen case merged in, the group key removed."""
    out = {k: v for k, v in config.items() if k not in groups}
    for g in groups:
        case = config.get(g)
        if isinstance(case, dict):
            out.update(case)
    return out


@runtime_checkable
class Trainable(Protocol):
    """What every trainable module declares (a user's `module:function` names its function
    instead of `train`), besides its parameters (`Config` in HOOKS)."""

    METRICS: Mapping[str, str]  # the metrics it reports each epoch, name -> "min" | "max"

    def train(self, config: dict[str, Any], data: Any, settings: Settings, report: Reporter,
              state: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class Hook:
    what: str
    default: Any = None


# The optional hooks of a trainable module: name -> what it is for, and what holds without it.
HOOKS: dict[str, Hook] = {
    "Config": Hook("a pydantic model of its parameters (extra=\"forbid\", with a `seed` field); "
                   "needed unless `resolve` (a user's `model:`) or the annotation of a (config, ctx) "
                   "function's first argument gives them"),
    "TASKS": Hook("the dataset tasks it takes, e.g. (\"classification\",)", ("classification", "regression")),
    "METRICS_BY_TASK": Hook("task -> the metrics it reports on a dataset of that task", {}),
    "CHECKPOINTS": Hook("whether it hands over checkpoint state", True),
    "PACKING": Hook("a Packing: several configurations train as one vectorized model (else None)"),
    "make_model": Hook("(config, example_shape, n_classes) -> the untrained nn.Module a trial "
                       "trained (best-model export, the model-size section, packing)"),
    "estimate_epoch_s": Hook("(config, input_shape, n_classes, sizes, threads) -> seconds per "
                             "epoch, measured (hpo plan)"),
    "resolve": Hook("(model ref) -> (build, params model, config model) of a user's `model:`"),
    "check_forward": Hook("(model ref, config, input_shape, n_classes): one forward pass of a "
                          "user's model before Ray starts, a clear error when it does not fit"),
    "time_pack": Hook("(configs, build, input_shape, n_classes, threads) -> (why not packable, "
                      "why not exact, speed-up): the torch.func pack probe"),
}


def hook(module: Any, name: str) -> Any:
    """A trainable module's optional hook `name` (hpo.contract.HOOKS), or its default."""
    return getattr(module, name, HOOKS[name].default)


def model_shape(example_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one example as a model sees it: images get a channel axis ((28, 28) ->
    (1, 28, 28)); tables and (C, H, W) images stay as they are."""
    shape = tuple(int(d) for d in example_shape)
    return (1, *shape) if len(shape) == 2 else shape
