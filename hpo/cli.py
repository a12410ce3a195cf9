"""`hpo` command line: a thin layer over importable functions.

    hpo run SPEC [--set k=v]... [--name NAME] [--storage DIR] [--address ADDR] [--no-dashboard]
            [--own-driver]
    hpo resume RUN_DIR
    hpo submit SPEC --address http://HEAD:8265 --storage SHARED_DIR [--wait]
    hpo plan SPEC [--set k=v]...
    hpo validate SPEC [--set k=v]...
    hpo report RUN_DIR [-o FILE]
    hpo compare RUN_DIR... -o FILE
    hpo best RUN_DIR [--format yaml|json]
    hpo runs [STORAGE]
    hpo dashboard [RUN_DIR | STORAGE] [--port 8080] [--host 127.0.0.1]
    hpo studies
    hpo up [--no-dashboard] [--num-cpus N] [--num-gpus N]    a warm local Ray for the next commands
    hpo down

SPEC is a YAML file or the name of a built-in study (`hpo studies` lists them).

Bad input exits with code 2 and one message, before Ray starts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from hpo.contract import REPORT_FILE
from hpo.errors import SpecError
from hpo.runner import head, served
from hpo.storage import Storage, locate, open_storage


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # --quiet: nothing but errors, so warnings (a dubious but accepted input) are not shown either
    warnings.simplefilter("ignore" if getattr(args, "quiet", False) else "default")
    if args.command == "run" and not (args.address or args.own_driver):
        rc = _served(sys.argv[1:] if argv is None else list(argv))
        if rc is not None:
            return rc
    try:
        return int(args.func(args) or 0)
    except SpecError as e:
        print(f"hpo: error: {e}", file=sys.stderr)
        return 2


def _served(argv: list[str]) -> int | None:
    """`hpo run` by the warm head of `hpo up`, when one runs and takes it (hpo.runner.served)."""
    rec = None if served.IN_HEAD else head.running()
    return served.try_served(argv, rec) if rec else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hpo", description="Hyperparameter search for PyTorch models on Ray Tune.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment spec")
    _spec_args(r)
    r.add_argument("--name", help="run name (default: the spec's name)")
    r.add_argument("--storage", help="folder for run results (default: the spec's storage, ./runs)")
    r.add_argument("--address", help="connect to a Ray cluster: auto | HOST:PORT | ray://HOST:10001")
    r.add_argument("--no-dashboard", action="store_true", help="start the local Ray without its dashboard")
    r.add_argument("--own-driver", action="store_true",
                   help="with `hpo up` running: join its Ray from this process instead of having "
                        "the warm head run the sweep (its own Ray job; slower to start)")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.add_argument("--no-progress", action="store_true",
                   help="hpo's lines and the summary, without the live progress line")
    r.add_argument("--verbose", action="store_true", help="Ray's own progress table instead of hpo's line")
    r.add_argument("--reports", default="reports", help="folder for the HTML report (default: reports)")
    r.add_argument("--resume", action="store_true",
                   help="continue <storage>/<name> if it exists (refused if the spec changed)")
    r.add_argument("--force", action="store_true", help="with --resume: even if the spec changed")
    r.add_argument("--from", dest="warm_start", metavar="RUN_DIR",
                   help="warm-start the searcher from the finished trials of a run of the same space")
    r.set_defaults(func=cmd_run)

    sb = sub.add_parser("submit", help="run an experiment as a Ray Job on a cluster")
    _spec_args(sb)
    sb.add_argument("--address", required=True, help="the cluster's dashboard, http://HEAD:8265")
    sb.add_argument("--storage", required=True, help="results folder on the cluster's shared filesystem")
    sb.add_argument("--name", help="run name (default: the spec's name)")
    sb.add_argument("--working-dir", help="a project folder to upload with the job (e.g. your own trainable)")
    sb.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    sb.set_defaults(func=cmd_submit)

    rs = sub.add_parser("resume", help="continue an interrupted run in place")
    rs.add_argument("run_dir")
    rs.add_argument("--address", help="connect to a Ray cluster: auto | HOST:PORT | ray://HOST:10001")
    rs.add_argument("--no-dashboard", action="store_true")
    rs.add_argument("--quiet", action="store_true", help="print nothing but errors")
    rs.add_argument("--no-progress", action="store_true", help="no live progress line (resume has none)")
    rs.add_argument("--more", type=int, metavar="N",
                    help="add N more samples to a finished run, keeping every trial it has")
    rs.set_defaults(func=cmd_resume)

    pl = sub.add_parser("plan", help="validate a spec and say what running it would take")
    _spec_args(pl)
    pl.set_defaults(func=cmd_plan)

    v = sub.add_parser("validate", help="check a spec without running it")
    _spec_args(v)
    v.set_defaults(func=cmd_validate)

    rp = sub.add_parser("report", help="build the HTML report of a run (finished or not)")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--output", help="HTML file (default: reports/<run name>.html)")
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="several runs on one HTML page")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("-o", "--output", required=True, help="HTML file to write")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("best", help="print the best configuration of a run")
    b.add_argument("run_dir")
    b.add_argument("--format", choices=["yaml", "json"], default="yaml")
    b.add_argument("--export", metavar="DIR", help="also write the best trial's trained weights, its "
                   "configuration and how to load them to DIR")
    b.set_defaults(func=cmd_best)

    db = sub.add_parser("dashboard", help="optuna-dashboard on the live mirror of a storage's runs")
    db.add_argument("path", nargs="?", default="runs", help="a run or storage folder (default: runs)")
    db.add_argument("--port", type=int, default=8080)
    db.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    db.set_defaults(func=cmd_dashboard)

    ru = sub.add_parser("runs", help="the runs of a storage folder or bucket, newest first")
    ru.add_argument("storage", nargs="?", default="runs", help="folder or URI (default: runs)")
    ru.set_defaults(func=cmd_runs)

    st = sub.add_parser("studies", help="list the built-in studies (run one with `hpo run NAME`)")
    st.set_defaults(func=cmd_studies)

    up = sub.add_parser("up", help="start a warm local Ray that hpo run / resume join until `hpo down`")
    up.add_argument("--no-dashboard", action="store_true", help="without Ray's dashboard")
    up.add_argument("--num-cpus", type=int, help="CPUs it offers (default: all of this machine's)")
    up.add_argument("--num-gpus", type=int, help="GPUs it offers (default: all of this machine's)")
    up.set_defaults(func=cmd_up)
    dn = sub.add_parser("down", help="stop the warm Ray started by `hpo up`")
    dn.set_defaults(func=cmd_down)
    return p


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment YAML file, or a built-in study's name (see `hpo studies`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a spec field, e.g. --set budget.max_epochs=1 (repeatable)")


def cmd_validate(args: argparse.Namespace) -> int:
    from hpo.api import validate

    exp = validate(args.spec, args.overrides)
    s = exp.spec
    what = f"model `{s.model}`" if s.model else f"`{s.trainable}`"
    print(f"{args.spec}: ok — {exp.n_trials} trial(s) x up to {s.budget.max_epochs} epoch(s) of "
          f"{what} on `{s.dataset.name}`; searcher {s.searcher.name}, scheduler "
          f"{s.scheduler.name}; selecting on {s.metric} ({exp.mode}); searched: "
          f"{', '.join(exp.searched_names)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from hpo.api import run

    overrides = [*args.overrides, *([f"warm_start={args.warm_start}"] if args.warm_start else [])]
    out = _out(args)
    res = run(args.spec, overrides, storage=args.storage, name=args.name, address=args.address,
              dashboard=not args.no_dashboard, progress=not (args.quiet or args.no_progress or args.verbose),
              report_dir=args.reports, resume=args.resume, force=args.force,
              verbose=1 if args.verbose and not args.quiet else 0, out=out)
    return _finish(res, out)


def _out(args: argparse.Namespace) -> Any:
    """Where hpo's own lines go: stdout, or nowhere with --quiet (errors still reach stderr)."""
    return io.StringIO() if args.quiet else sys.stdout


def cmd_resume(args: argparse.Namespace) -> int:
    from hpo.api import resume

    out = _out(args)
    res = resume(args.run_dir, more=args.more, address=args.address, dashboard=not args.no_dashboard,
                 progress=False, verbose=0 if args.quiet or args.no_progress else 1, out=out)
    return _finish(res, out)


def cmd_submit(args: argparse.Namespace) -> int:
    from hpo.experiment import load_experiment
    from hpo.submit import submit, wait

    exp = load_experiment(args.spec, args.overrides, local=False)  # fail here, not on the cluster
    client, job_id = submit(exp, args.address, args.storage, args.name, args.working_dir)
    print(f"hpo: submitted {exp.spec.name} as Ray Job {job_id} to {args.address}\n"
          f"  follow: ray job logs --follow {job_id} --address {args.address}\n"
          f"  status: ray job status {job_id} --address {args.address}\n"
          f"  results: {args.storage}/{args.name or exp.spec.name}")
    if not args.wait:
        return 0
    status = wait(client, job_id)
    print(client.get_job_logs(job_id))
    print(f"hpo: job {job_id} {status}")
    return 0 if status == "SUCCEEDED" else 1


def _finish(res: Any, out: Any) -> int:
    """The summary of a run the API ran and reported; with --quiet (`out` a sink) nothing."""
    with contextlib.redirect_stdout(out):
        _print_summary(res)
        outcome = res.outcome
        if outcome.fault:
            print(f"  report:  not written (the storage stopped taking writes)\n"
                  f"  resume:  hpo resume {res.run_dir}")
            return 4
        if outcome.unchanged and res.report_path == res.run_dir / REPORT_FILE:
            print(f"  report:  {res.report_path}  (as it was)")
            return 0
        print(f"  report:  {res.report_path.resolve()}  (and {res.run_dir / REPORT_FILE})")
    return {"finished": 0, "aborted": 3}.get(res.state, 130)


def cmd_plan(args: argparse.Namespace) -> int:
    from hpo.api import validate
    from hpo.plan import describe, make_plan

    exp = validate(args.spec, args.overrides)
    print(describe(exp, make_plan(exp)))
    return 0


def _print_summary(res: Any) -> None:
    import pandas as pd

    metric, mode, t, info = res.metric, res.mode, res.trials, res.info
    print(f"\nhpo: {res.state} in {res.outcome.wall_time_s:.1f} s; trials: "
          + ", ".join(f"{n} {s}" for s, n in t["status"].value_counts().items()))
    if info.get("ended_by"):
        print(f"hpo: the {info['ended_by']} ran out: {len(t)} of {info.get('n_trials_planned', '?')} "
              f"planned trial(s) ran (budget.time_budget_s).")
    _print_data(res.run_dir)
    col = f"best_{metric}"
    if len(t) and col in t:
        cols = [c for c in t.columns if c.startswith("param.")]
        cols += [col, "test_acc", "epochs", "time_s", "status_detail"]
        top = t.sort_values(col, ascending=(mode == "min")).head(5)[[c for c in cols if c in t]]
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print("\nTop trials:\n" + top.to_string(index=False))
    objectives = info.get("objectives") or {}
    if len(objectives) > 1:
        from hpo.results import pareto_set

        front = pareto_set(t, objectives, metric, mode)
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(f"\nPareto set ({', '.join(f'{k} {v}' for k, v in objectives.items())}): "
                  f"{len(front)} trial(s)\n" + front.to_string(index=False, float_format="{:.4g}".format))
    if "feasible" in t:
        print(f"\n{int((~t['feasible'].astype(bool)).sum())} trial(s) outside the constraints "
              f"(never selected)")
    if "collapsed" in t and t["collapsed"].any():
        print(f"\n{int(t['collapsed'].sum())} trial(s) collapsed (accuracy at chance or the loss "
              f"exploded without NaN); see status_detail in {res.run_dir / 'trials.csv'}")
    from hpo.report.findings import findings

    found = findings(res) if len(t) and not res.outcome.fault else []
    if found:
        print("\nFindings:\n" + "\n".join(f"  - {f}" for f in found))
    best = res.best
    if best is not None:
        print("\nBest configuration" + (f" by the primary metric {metric}" if len(objectives) > 1 else "")
              + ":\n" + _best_yaml(best))
    uri = info.get("storage_uri")
    print(f"\nResults: {uri or res.run_dir}" + (f" (local copy: {res.run_dir})" if uri else "")
          + f"\n  trials:  {res.run_dir / 'trials.csv'}\n  history: {res.run_dir / 'history.parquet'}")


def _print_data(run_dir: Path) -> None:
    """The data the run trained on; loudly when it fell back to the embedded sample."""
    from hpo.results import read_run_info, read_spec

    ds = read_run_info(run_dir).get("dataset") or {}
    if not ds:
        return
    asked = read_spec(run_dir).dataset.name
    sizes = f"{ds.get('train')} train / {ds.get('val')} val / {ds.get('test')} test"
    if ds.get("is_sample") and asked != ds.get("name"):
        print(f"hpo: data: the EMBEDDED SAMPLE `{ds.get('name')}` ({sizes}), NOT `{asked}`: its files "
              f"were not found and could not be downloaded; results are not comparable to full-data ones")
    else:
        source = f" from {ds['source']}" if ds.get("source") else ""
        print(f"hpo: data: `{ds.get('name')}` ({sizes}){source}")


def _best_config(row: Any) -> dict[str, Any]:
    from hpo.results import trial_config

    cfg = trial_config(row)
    keys = [k for k in row.index if k.startswith(("best_", "test_")) and k != "best_epoch"
            and k != "best_epoch_time_s" and _finite(row[k])]
    return {"trial_id": row["trial_id"], "best_epoch": int(row["best_epoch"]), "config": cfg,
            "metrics": {k: round(float(row[k]), 6) for k in keys}}


def _finite(x: Any) -> bool:
    try:
        return float(x) == float(x) and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        return False


def _best_yaml(row: Any) -> str:
    import yaml

    return yaml.safe_dump(_best_config(row), sort_keys=False)


def cmd_report(args: argparse.Namespace) -> int:
    from hpo.api import build_report

    t0 = time.perf_counter()
    _, run_dir = locate(args.run_dir)  # a folder, or s3://bucket/runs/<name> (fetched first)
    # (a run still going, or killed, gets its tables written first)
    out = build_report(run_dir, args.output or Path("reports") / f"{run_dir.name}.html")
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from hpo.report.compare import build_compare
    from hpo.results import require_run_dir
    from hpo.runner.collect import refresh

    for d in args.run_dirs:
        refresh(require_run_dir(d))
    out = build_compare(args.run_dirs, args.output)
    print(f"comparison: {out}")
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from hpo.api import load_run

    run = load_run(args.run_dir)
    run_dir, best = run.run_dir, run.best
    if best is None:
        raise SpecError("no trial with a finite metric in this run yet.", file=str(run_dir))
    cfg = _best_config(best)
    objectives = run.info.get("objectives") or {}
    if len(objectives) > 1:  # the trade-off first: every Pareto-optimal trial, to stderr
        from hpo.results import pareto_set

        front = pareto_set(run.trials, objectives, run.metric, run.mode)
        print(f"Pareto set: {len(front)} trial(s) ({', '.join(f'{k} {v}' for k, v in objectives.items())}); "
              f"below, the best by the primary metric {run.metric}:\n"
              + front.to_string(index=False, float_format=lambda x: f"{x:.4g}") + "\n", file=sys.stderr)
    print(json.dumps(cfg, indent=2) if args.format == "json" else _best_yaml(best), end="")
    if args.export:
        from hpo.model_io import export

        out = export(run_dir, args.export)
        print(f"exported: {out} (model.pt, model.json, README.txt); load with hpo.load_model({str(out)!r})",
              file=sys.stderr)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from hpo.runner.mirror import JOURNAL, open_journal

    p = Path(args.path).resolve()
    journal = next((d / JOURNAL for d in (p, p.parent) if (d / JOURNAL).exists()), None)
    if journal is None:
        raise SpecError(f"no {JOURNAL} here or in its parent: give a storage folder (e.g. runs) or a "
                        f"run folder of a run started by this version of hpo.", file=str(p))
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise SpecError("the live view needs optuna-dashboard, one of hpo's dependencies: "
                        "pip install optuna-dashboard.") from None
    print(f"hpo: optuna-dashboard for {journal} on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
          flush=True)
    run_server(open_journal(journal), host=args.host, port=args.port)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    import pandas as pd

    from hpo.results import runs_table

    st = open_storage(args.storage) if "://" in args.storage else Storage(Path(args.storage).resolve())
    table = runs_table(st.run_dirs())
    if table.empty:
        print(f"no runs in {args.storage}")
        return 0
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def cmd_studies(args: argparse.Namespace) -> int:
    from hpo.studies_index import list_studies

    studies = list_studies()
    width = max(map(len, studies), default=0)
    print("Built-in studies (run one with `hpo run NAME`):")
    for name, desc in studies.items():
        print(f"  {name:<{width}}  {desc}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    for flag in ("num_cpus", "num_gpus"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            raise SpecError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    try:
        rec, started = head.up(not args.no_dashboard, args.num_cpus, args.num_gpus)
    except RuntimeError as e:
        print(f"hpo: error: {e}", file=sys.stderr)
        return 1
    res = rec.get("resources", {})
    print(f"hpo: {'started' if started else 'already running:'} a warm local Ray (process {rec['pid']}, "
          f"{rec['address']}, {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU"
          f"{', dashboard ' + rec['dashboard_url'] if rec.get('dashboard_url') else ''}). "
          f"It runs `hpo run` itself on workers it keeps started (`--own-driver`: join it instead), "
          f"`hpo resume` joins it; `hpo down` stops it. "
          f"Token authentication is on: `ray get-auth-token` prints the token.")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    rec = head.down()
    print(f"hpo: stopped the warm Ray (process {rec['pid']})." if rec else "hpo: no warm Ray is running.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "default")
    sys.exit(main())
