"""From a structurally valid spec to a checked experiment, before Ray starts.

Every check that needs the registries lives here: trainable params and their values, the
metric, dataset compatibility, searcher/scheduler options and combinations, and resources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hpo import trackers
from hpo.adapters import Search
from hpo.contract import expand_cases
from hpo.data import DatasetInfo, dataset_info
from hpo.errors import SpecError, did_you_mean, unknown_name
from hpo.optuna_space import point_error
from hpo.refs import add_search_path
from hpo.schedulers import SCHEDULERS, SchedulerEntry
from hpo.searchers import SEARCHERS, SearcherEntry
from hpo.space import Distribution, Param, grid_size, groups, parse_param, sample_configs, searched, thaw
from hpo.spec import Spec, read_raw, validate_partly
from hpo.studies_index import resolve
from hpo.trainables import TrainableInfo, get_trainable


@dataclass(frozen=True)
class Experiment:
    spec: Spec
    params: dict[str, Param]
    trainable: TrainableInfo
    dataset: DatasetInfo
    searcher: SearcherEntry
    searcher_options: BaseModel
    scheduler: SchedulerEntry
    scheduler_options: BaseModel
    mode: str
    metrics: dict[str, str] = field(default_factory=dict)  # what the trainable reports on this data
    tracking: dict[str, Any] = field(default_factory=dict)  # tracker name -> validated options
    prior: tuple[tuple[dict[str, Any], dict[str, float]], ...] = ()  # warm start: (config, values)

    @property
    def objectives(self) -> dict[str, str]:
        """metric -> direction of every objective (empty: one metric, `spec.metric`)."""
        return dict(self.spec.objectives)

    @property
    def constraints(self) -> dict[str, tuple[float | None, float | None]]:
        return {k: (b.min, b.max) for k, b in self.spec.constraints.items()}

    @property
    def n_trials(self) -> int:
        """Trials the run will start: grid points x num_samples (Ray's semantics)."""
        return grid_size(self.params) * self.spec.budget.num_samples

    @property
    def searched_names(self) -> list[str]:
        return list(searched(self.params))


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                    local: bool = True) -> Experiment:
    """Load, validate and check a spec file or a built-in study's name (e.g. "lr_reg");
    `local=False` skips this machine's resource check."""
    path = resolve(path)
    try:
        raw = read_raw(path, overrides)
        add_search_path(Path(path).resolve().parent)  # user code next to the spec is found
        return check_raw(raw, local)
    except SpecError as e:
        raise SpecError(e.message, field=e.field, file=str(path)) from None


def check_raw(raw: dict[str, Any], local: bool = True) -> Experiment:
    """Validate a spec's structure and `check` it. Where the structure is wrong, the rest is still
    checked on what is left without the fields at fault, and every problem is said at once."""
    spec, problems = validate_partly(raw)
    if not problems:
        assert spec is not None
        return check(spec, local)
    errs = _Errors()
    errs.found = [SpecError(p) for p in problems]
    if spec is not None:
        check(spec, local, errs)  # raises, with the problems above first
    errs.raise_any()
    raise AssertionError("unreachable")


class _Errors:
    """Every independent check of a spec runs, and all their errors are reported at once (one
    per line); a check that needs an earlier one's result runs only when that one passed."""

    def __init__(self) -> None:
        self.found: list[SpecError] = []

    @contextmanager
    def stage(self) -> Iterator[None]:
        try:
            yield
        except SpecError as e:
            self.found.append(e)

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise SpecError(f"{len(self.found)} problems:\n  " + "\n  ".join(str(e) for e in self.found))


def check(spec: Spec, local: bool = True, errs: _Errors | None = None) -> Experiment:
    """Every check of a valid spec before Ray; `errs` may hold problems found earlier, said first."""
    errs = errs or _Errors()
    got: dict[str, Any] = {}
    with errs.stage():
        got["trainable"] = get_trainable(spec.trainable, model=spec.model)
    with errs.stage():
        got["dataset"] = dataset_info(spec.dataset)
    params: dict[str, Param] = {}
    for k, v in spec.params.items():
        with errs.stage():
            params[k] = parse_param(k, v)
    with errs.stage():
        got["searcher"] = SEARCHERS.get(spec.searcher.name, field="searcher.name")
        got["s_opts"] = _options(got["searcher"].options, spec.searcher.options, "searcher")
    with errs.stage():
        got["scheduler"] = SCHEDULERS.get(spec.scheduler.name, field="scheduler.name")
        got["t_opts"] = _options(got["scheduler"].options, spec.scheduler.options, "scheduler")
    with errs.stage():
        got["tracking"] = trackers.check(spec.tracking)
    if local:
        with errs.stage():
            _check_resources(spec)
    if "trainable" not in got or "dataset" not in got:
        errs.raise_any()
    trainable, dataset = got["trainable"], got["dataset"]
    metrics = trainable.metrics_for(dataset.task)
    mode = None
    declared = spec.metric is not None
    with errs.stage():
        _check_task(spec, trainable, dataset, metrics)
        targets = {**{k: v for k, v in metrics.items() if not k.startswith("test_")}, **trainable.attributes}
        _check_objectives(spec, targets)
        if not declared:  # the first objective is the primary one (ranking, confirm, report)
            spec = spec.model_copy(update={"metric": next(iter(spec.objectives))})
        mode = _check_metric(spec, metrics)
    parsed = len(params) == len(spec.params)
    if parsed:
        params_ok = len(errs.found)
        with errs.stage():
            _check_params(params, trainable, spec)
        params_ok = len(errs.found) == params_ok
        with errs.stage():  # independent of the parameters' names: said with them
            _check_sizes(params, trainable, dataset, spec)
        if params_ok and trainable.model is not None:  # one forward pass: does the model fit the data?
            with errs.stage():
                trainable.check_forward(sample_configs(params, 1)[0], dataset.input_shape, dataset.n_classes)
    prior: tuple[Any, ...] = ()
    if "s_opts" in got and parsed and mode is not None:
        searcher = got["searcher"]
        with errs.stage():
            searcher.check(params, got["s_opts"], dict(spec.objectives) or {spec.metric: mode})
        with errs.stage():
            _check_points(spec, params, searcher, trainable)
        with errs.stage():
            prior = _warm_start(spec, params, searcher) if spec.warm_start else ()
    if "t_opts" in got:
        with errs.stage():
            _check_scheduler(spec, got["scheduler"], got["t_opts"], trainable, declared)
    errs.raise_any()
    return Experiment(spec, params, trainable, dataset, got["searcher"], got["s_opts"], got["scheduler"],
                      got["t_opts"], mode, metrics, got["tracking"], prior)


def _check_task(spec: Spec, trainable: TrainableInfo, dataset: DatasetInfo, metrics: dict[str, str]) -> None:
    if dataset.task not in trainable.tasks:
        raise SpecError(
            f"dataset `{spec.dataset.name}` is a {dataset.task} dataset; trainable "
            f"`{spec.trainable}` takes {', '.join(trainable.tasks)} datasets.",
            field="dataset.name",
        )
    for task in trainable.tasks:  # a metric of the other task: say which task the data is
        if task != dataset.task and spec.metric not in metrics and spec.metric in trainable.metrics_for(task):
            raise SpecError(f"`{spec.metric}` is a {task} metric, but dataset `{spec.dataset.name}` is a "
                            f"{dataset.task} dataset (user data: integer labels mean classification; "
                            f"set dataset.task to say otherwise). Metrics here: "
                            f"{', '.join(sorted(metrics))}.", field="metric")


def _check_scheduler(spec: Spec, scheduler: SchedulerEntry, t_opts: BaseModel, trainable: TrainableInfo,
                     declared: bool) -> None:
    if scheduler.searchers is not None and spec.searcher.name not in scheduler.searchers:
        raise SpecError(
            f"scheduler `{spec.scheduler.name}` cannot be combined with searcher "
            f"`{spec.searcher.name}`; use searcher {' or '.join(scheduler.searchers)}.",
            field="searcher.name",
        )
    if len(spec.objectives) > 1 and scheduler.one_metric and not declared:
        raise SpecError(f"scheduler `{spec.scheduler.name}` compares trials by one metric, and "
                        f"{len(spec.objectives)} objectives are given; name the primary one with "
                        f"`metric:` (one of {', '.join(spec.objectives)}), or use scheduler fifo.",
                        field="scheduler.name")
    if scheduler.check is not None:
        scheduler.check(t_opts, spec.budget.max_epochs)
    if scheduler.needs_checkpoints and (not trainable.checkpoints or spec.checkpoint.every == 0):
        raise SpecError(
            f"scheduler `{spec.scheduler.name}` moves weights between trials through "
            f"checkpoints; set checkpoint.every >= 1 (trainable `{spec.trainable}` "
            f"{'can' if trainable.checkpoints else 'cannot'} checkpoint).",
            field="scheduler.name",
        )


def _check_objectives(spec: Spec, targets: dict[str, str]) -> None:
    """Objectives and constraints name what a trial reports, in its natural direction."""
    for name, direction in spec.objectives.items():
        field = f"objectives.{name}"
        if name.startswith("test_"):
            raise SpecError("the test set never drives selection; use the validation metric "
                            f"`val_{name[5:]}`.", field=field)
        if name not in targets:
            raise SpecError(f"trainable `{spec.trainable}` does not report "
                            + unknown_name("metric", name, targets).removeprefix("unknown "), field=field)
        if direction != targets[name]:
            raise SpecError(f"`{name}` is to be {'maximized' if targets[name] == 'max' else 'minimized'}; "
                            f"`{direction}` would search for the worst trials. Use {name}: "
                            f"{targets[name]}.", field=field)
    for name in spec.constraints:
        if name not in targets:
            raise SpecError("a constraint on a value no trial reports: "
                            + unknown_name("metric", name, targets).removeprefix("unknown "),
                            field=f"constraints.{name}")


def _check_points(spec: Spec, params: dict[str, Param], searcher: SearcherEntry,
                  trainable: TrainableInfo) -> None:
    """Each known point gives every searched parameter a value of its distribution."""
    if not spec.points_to_evaluate:
        return
    if not searcher.points:
        raise SpecError(f"searcher `{spec.searcher.name}` tries every grid point already; "
                        f"points_to_evaluate are for random, optuna and nevergrad.",
                        field="points_to_evaluate")
    names = searched(params)
    base = {k: thaw(p.value) for k, p in params.items() if not isinstance(p, Distribution)}
    for i, point in enumerate(spec.points_to_evaluate):
        field = f"points_to_evaluate[{i}]"
        for k in point:
            if k not in names:
                raise SpecError(f"`{k}` is not a searched parameter.{did_you_mean(k, names)} "
                                f"Searched: {', '.join(names)}.", field=field)
        missing = [k for k in names if k not in point]
        if missing:
            raise SpecError(f"missing {', '.join(missing)}: a point gives every searched "
                            f"parameter ({', '.join(names)}).", field=field)
        for k, v in point.items():
            err = point_error(names[k], v)
            if err:
                raise SpecError(f"{err}.", field=f"{field}.{k}")
        _validate(trainable.config_model, expand_cases({**base, **point}, groups(params)), None)


def _warm_start(spec: Spec, params: dict[str, Param], searcher: SearcherEntry) -> tuple[Any, ...]:
    """The finished trials of an earlier run of the same space: (config, values) pairs."""
    from hpo import results

    field = "warm_start"
    if not searcher.model_based:
        raise SpecError(f"searcher `{spec.searcher.name}` does not learn from results, so earlier "
                        f"trials cannot guide it; warm starts are for optuna and nevergrad.", field=field)
    run_dir = Path(spec.warm_start).expanduser()  # type: ignore[arg-type]
    try:
        results.require_run_dir(run_dir)
        trials, _ = results.load_tables(run_dir)
    except SpecError as e:
        raise SpecError(e.message, field=field, file=e.file) from None
    old = {k: p for k, v in results.read_spec(run_dir).params.items()
           if isinstance(p := parse_param(k, v), Distribution)}
    new = searched(params)
    why = {True: "only in the earlier run", False: "only here"}
    diff = [f"{k} ({why[k in old] if (k in old) != (k in new) else 'different distribution'})"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        raise SpecError(f"run {run_dir} searched a different space: {', '.join(diff)}. A warm "
                        f"start needs the same searched parameters and distributions.", field=field)
    out = prior_from(trials, spec, new)
    if not out:
        raise SpecError(f"run {run_dir} has no finished trial to start from.", field=field)
    return out


def prior_from(trials: Any, spec: Spec, new: dict[str, Any]) -> tuple[Any, ...]:
    """(point, values) of each finished, eligible trial of a trials table: what a searcher
    that learns is told of them (a warm start, or a resumed run's own trials)."""
    from hpo import results

    goals = dict(spec.objectives) or {spec.metric: ""}
    out = []
    if trials is None or not len(trials):
        return ()
    for _, row in results.eligible(trials, spec.metric).iterrows():
        if row["status"] not in results.DONE:
            continue
        config = results.trial_config(row)
        point = {}
        for k, p in new.items():
            if p.is_group:
                case = p.values[p.labels().index(row[f"param.{k}"])]
                point[k] = {c: config[c] for c in case}
            else:
                point[k] = config[k]
        values = {m: float(row[results.objective_column(trials, m)]) for m in
                  {*goals, *spec.constraints}}
        out.append((point, values))
    return tuple(out)


def _check_metric(spec: Spec, metrics: dict[str, str]) -> str:
    if spec.metric not in metrics:
        raise SpecError(f"trainable `{spec.trainable}` does not report "
                        + unknown_name("metric", spec.metric, metrics).removeprefix("unknown "),
                        field="metric")
    if spec.metric.startswith("test_"):
        raise SpecError("the test set never drives selection; use the validation metric "
                        f"`val_{spec.metric[5:]}`.", field="metric")
    natural = metrics[spec.metric]
    if spec.mode is not None and spec.mode != natural:
        raise SpecError(f"`{spec.metric}` is to be {'maximized' if natural == 'max' else 'minimized'}; "
                        f"mode `{spec.mode}` would select the worst trial. Use mode: {natural} "
                        f"(or leave mode out).", field="mode")
    return natural


def _check_params(params: dict[str, Param], trainable: TrainableInfo, spec: Spec) -> None:
    model = trainable.config_model
    fields = list(model.model_fields)
    # a model that takes a plain dict takes any name (its forward pass checks them)
    open_ = model.model_config.get("extra") == "allow"
    group_names = groups(params)
    unknown = []
    for name in params:
        if name in group_names:
            _check_group(name, params, fields, spec, open_)
        elif name not in fields and not open_:
            unknown.append(name)
    if unknown:  # every misspelt name at once
        what = "; ".join(f"`{n}`.{did_you_mean(n, fields)}" for n in unknown)
        raise SpecError(f"trainable `{spec.trainable}` has no parameter {what} Allowed: "
                        f"{', '.join(fields)}.", field=f"params.{unknown[0]}")
    base = {k: thaw(p.value) for k, p in params.items() if not isinstance(p, Distribution)}
    _validate(model, base, None)
    for name, p in searched(params).items():
        for i, v in enumerate(p.candidates()):
            if p.is_group:  # a case replaces several values at once
                _validate(model, {**base, **thaw(v)}, f"{name}.{p.kind}[{i}]")
            else:
                _validate(model, {**base, name: thaw(v)}, f"{name}.{p.kind}")


def _check_group(name: str, params: dict[str, Param], fields: list[str], spec: Spec,
                 open_: bool = False) -> None:
    if name in fields:
        raise SpecError(f"`{name}` is a parameter of trainable `{spec.trainable}`, so it cannot "
                        f"name a group of cases; call the group something else (e.g. `setup`).",
                        field=f"params.{name}")
    p = params[name]
    assert isinstance(p, Distribution)
    for i, case in enumerate(p.values):
        for k in case:
            if k not in fields and not open_:
                raise SpecError(
                    f"case {i + 1}: trainable `{spec.trainable}` has no parameter `{k}`."
                    f"{did_you_mean(k, fields)} Allowed: {', '.join(fields)}.",
                    field=f"params.{name}.{p.kind}")
            if k in params:
                raise SpecError(
                    f"case {i + 1} sets `{k}`, which is also given as params.{k}; set it in "
                    f"one place (in every case, or once outside the group).",
                    field=f"params.{name}.{p.kind}")


def _validate(model: type[BaseModel], values: dict[str, Any], where: str | None) -> None:
    try:
        model.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        field = f"params.{where or loc}"
        got = err.get("input")
        raise SpecError(f"{err['msg'].removeprefix('Value error, ')} (got {got!r}).", field=field) from None


def _check_sizes(params: dict[str, Param], trainable: TrainableInfo, dataset: DatasetInfo,
                 spec: Spec) -> None:
    n = dataset.n_train
    n_full = min(n, spec.dataset.train_size or n)
    val = dataset.val_size(spec.dataset.val_size)
    what = f"`{spec.dataset.name}`" + (f" in {dataset.source}" if dataset.source else "")
    if val >= n:
        default = ", or leave val_size out (10% of the training examples, at most 5,000)" \
            if not dataset.default_val_size else ""
        raise SpecError(f"val_size {val:,} leaves no training data: {what} has {n:,} training "
                        f"examples; give at most {n - 1:,}{default}.", field="dataset.val_size")
    train = spec.dataset.train_size
    if train is not None and train > n - val:
        raise SpecError(f"train_size {train:,} is more than {what} has left for training: {n:,} "
                        f"training examples less {val:,} for validation is {n - val:,}; give at most "
                        f"{n - val:,}, or leave train_size out (all of them).", field="dataset.train_size")
    p = params.get("batch_size")
    values = ([] if p is None else p.candidates() if isinstance(p, Distribution) else [p.value])
    for g in groups(params):  # batch sizes set inside cases
        values += [c["batch_size"] for c in params[g].values if "batch_size" in c]  # type: ignore[union-attr]
    for bs in values:
        if isinstance(bs, int) and bs > n_full:
            raise SpecError(
                f"batch size {bs} is larger than the training set ({n_full} examples of "
                f"`{spec.dataset.name}`); use at most {n_full} (that is full-batch training).",
                field="params.batch_size",
            )


def _options(model: type[BaseModel], options: dict[str, Any], kind: str) -> BaseModel:
    try:
        return model.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        allowed = [f for f in model.model_fields]
        if err["type"] == "extra_forbidden":
            msg = (f"unknown option.{did_you_mean(key, allowed)} "
                   f"Allowed: {', '.join(allowed) or 'none'}.")
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})."
        raise SpecError(msg, field=f"{kind}.{key}") from None


def _check_resources(spec: Spec) -> None:
    cpus = os.cpu_count() or 1
    if spec.resources.cpu > cpus:
        raise SpecError(f"{spec.resources.cpu} CPUs per trial, but this machine has {cpus}. "
                        f"Use at most {cpus}, or run on a cluster (--address).",
                        field="resources.cpu")
    if spec.resources.gpu > 0:
        import torch

        if not torch.cuda.is_available():
            raise SpecError(f"{spec.resources.gpu} GPU per trial, but no CUDA GPU is visible "
                            f"here. Set resources.gpu: 0, or run on a GPU node (--address).",
                            field="resources.gpu")


def search_args(exp: Experiment, max_concurrent: int | None, samples: int | None = None,
                 prior: tuple[Any, ...] = (), points: bool = True, reseed: int = 0) -> Search:
    """What the registry's searcher is built from. `reseed`: added to the searcher's seed (a
    resumed searcher that learns must not draw its first run's random start-up points again)."""
    spec = exp.spec
    options, seed = exp.searcher_options, spec.seed
    if reseed:
        own = getattr(options, "seed", None)
        seed = (seed if own is None else own) + reseed
        if own is not None:
            options = options.model_copy(update={"seed": seed})
    return Search(
        exp.params, options, seed, max_concurrent, spec.metric, exp.mode,
        objectives=exp.objectives, constraints=exp.constraints,
        points=tuple(spec.points_to_evaluate) if points else (), prior=prior,
        num_samples=spec.budget.num_samples if samples is None else samples,
        directions={**exp.metrics, **exp.trainable.attributes})
