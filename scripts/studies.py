"""Run the classic studies for real and write STUDIES.md from their run folders.

    python scripts/studies.py run [NAME ...]     # hpo run each study, timing it (wall clock)
    python scripts/studies.py write              # STUDIES.md from runs/studies/<name>/

Studies run one after another on this machine with HPO_DATA_DIR (full MNIST); wall times are
the `hpo run` process's, Ray start and report included. CIFAR studies need CIFAR-10 on disk and
are listed as tested on generated files unless their run folder exists.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STORAGE = ROOT / "runs" / "studies"
MNIST = ["learning_rate", "lr_reg", "regularization", "batch_size", "batch_size_pareto", "architecture",
         "architecture_pareto", "optimizers", "optimizers_tpe", "cnn", "regression", "compare/grid",
         "compare/random", "compare/random_asha", "compare/tpe", "compare/tpe_asha", "compare/pso",
         "compare/de"]
CIFAR = ["cifar10_augmentation", "cifar10_resnet18"]
QUESTIONS = {
    "learning_rate": "Which learning rate for the two-layer net (plain SGD)?",
    "lr_reg": "Learning rate x L2 strength, two-layer net.",
    "regularization": "No penalty vs L1 vs L2, and how strong?",
    "batch_size": "Batch 128 vs 1024 vs full batch: accuracy and time per epoch.",
    "architecture": "Depth 1-3 x width 128/256/512: accuracy and overfitting vs parameters.",
    "optimizers": "SGD vs momentum vs Adam vs AdaGrad on the CNN.",
    "cnn": "CNN depth, dropout, batch norm; lr extremes with and without momentum.",
    "regression": "f(x) = x1 exp(-x1^2 - x2^2): m = 100 vs 1000 points x architecture.",
    "compare": "The same space searched seven ways (grid, random, random+ASHA, TPE, TPE+ASHA, "
               "particle swarm, differential evolution).",
    "batch_size_pareto": "Accuracy against seconds per epoch: batch size x lr, multi-objective TPE.",
    "architecture_pareto": "Accuracy against parameter count: depth x width x lr, NSGA-II.",
    "optimizers_tpe": "Which optimizer, searched: each with its own lr range (and SGD's momentum), "
                      "conditional TPE.",
}


def spec_path(name: str) -> Path:
    return ROOT / "search_spaces" / f"{name}.yaml"


def run_dir(name: str) -> Path:
    import yaml

    return STORAGE / yaml.safe_load(spec_path(name).read_text())["name"]


def cmd_run(names: list[str]) -> None:
    STORAGE.mkdir(parents=True, exist_ok=True)
    timings = _timings()
    for name in names or MNIST:
        d = run_dir(name)
        if d.exists():
            print(f"{name}: {d} exists, skipped (delete it to rerun)")
            continue
        t0 = time.time()
        cmd = [sys.executable, "-m", "hpo.cli", "run", str(spec_path(name)), "--storage", str(STORAGE),
               "--no-dashboard", "--quiet", "--reports", str(ROOT / "reports" / "studies")]
        rc = subprocess.call(cmd, cwd=ROOT)
        timings[name] = {"wall_s": round(time.time() - t0, 1), "rc": rc, "when": time.strftime("%F %T")}
        (STORAGE / "timings.json").write_text(json.dumps(timings, indent=1))
        print(f"{name}: rc {rc}, {timings[name]['wall_s']} s")


def _timings() -> dict:
    p = STORAGE / "timings.json"
    return json.loads(p.read_text()) if p.exists() else {}


def md_table(df) -> str:  # noqa: ANN001
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}"
        return str(v).replace("|", "\\|")

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def section(name: str, timings: dict) -> str:
    from hpo.report import tables
    from hpo.results import RunFolder

    d = run_dir(name)
    cmd = f"hpo run search_spaces/{name}.yaml"
    if not (d / "trials.csv").exists():
        return f"### {name}\n\n`{cmd}`: not run yet.\n"
    data = RunFolder.read(d)
    t = timings.get(name, {})
    ds = data.info.get("dataset", {})
    counts = ", ".join(f"{n} {k}" for k, n in tables.status_counts(data).items())
    out = [f"### {name}", "", QUESTIONS.get(name, ""), "",
           f"- command: `{cmd}`",
           f"- CPU wall time: **{t.get('wall_s', data.info.get('wall_time_s', 0)):.0f} s** "
           f"({ds.get('name')}: {ds.get('train')} train / {ds.get('val')} val / {ds.get('test')} test; "
           f"{data.max_epochs} epochs max; trials: {counts})"]
    best = data.best
    if best is not None:
        params = {k.removeprefix("param."): best[k] for k in best.index if k.startswith("param.")}
        groups = {g: p for g, p in data.searched.items() if p.is_group}
        if groups:  # a group's label says what it fixes; its member columns repeat it
            from hpo.space import Distribution

            own = {k for p in groups.values() for c in p.values for k, v in c.items()
                   if isinstance(v, Distribution)}  # sampled inside a case
            params = {k: v for k, v in params.items() if k in groups or k in own}
        test = {k: best[k] for k in ("test_acc", "test_mse") if k in best and best[k] == best[k]}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in params.items() if v == v)
        out.append(f"- best: {shown} -> "
                   f"{data.best_col} {best[data.best_col]:.4g}, "
                   + ", ".join(f"{k} {v:.4g}" for k, v in test.items()))
    if name == "regression" and "param.m" in data.trials:
        per_m = data.trials.groupby("param.m")["test_mse"].min()
        out.append("- best test MSE per m: " + ", ".join(f"m={m}: {v:.2e}" for m, v in per_m.items()))
    out.append("")
    st = tables.seed_table(data)
    if st is not None:
        out += ["Train / val / test at each configuration's best validation epoch:", "", md_table(st), ""]
    from hpo.confirm import confirm_table

    ct = confirm_table(d)
    if ct is not None:
        out += ["Confirmation (the best configurations retrained with new seeds; mean and std):", "",
                md_table(ct), ""]
    conditional = [g for g, p in data.searched.items() if p.is_conditional]
    for g in conditional:  # a conditional space: how each case did, with its own parameters
        t = data.trials.dropna(subset=[data.best_col])
        best = t.loc[t.groupby(f"param.{g}")[data.best_col].idxmax()]
        best = best.sort_values(data.best_col, ascending=False)
        from hpo.space import Distribution

        names = dict.fromkeys(k for c in data.searched[g].values for k, v in c.items()
                              if isinstance(v, Distribution))
        own = [f"param.{k}" for k in names if f"param.{k}" in t]
        rows = best[[f"param.{g}", *own, data.best_col, "test_acc"]].copy()
        rows.insert(1, "trials", [int((t[f"param.{g}"] == v).sum()) for v in rows[f"param.{g}"]])
        out += ["Best trial of each case (its own parameters; blank where a case has none):", "",
                md_table(rows.rename(columns=lambda c: c.removeprefix("param."))), ""]
    if name == "batch_size":
        et = tables.epoch_time_data(data)
        if et is not None:
            out += ["Time per epoch:", "", md_table(et), ""]
    objectives = data.info.get("objectives") or {}
    if len(objectives) > 1:
        from hpo.results import pareto_set

        front = pareto_set(data.trials, objectives, data.metric, data.mode)
        out += [f"Pareto set ({', '.join(f'{k} {v}' for k, v in objectives.items())}): {len(front)} of "
                f"{len(data.trials)} trials:", "", md_table(front.drop(columns="trial_id")), ""]
    if name == "architecture":
        ms = tables.model_size_data(data)
        if ms is not None:
            out += ["Accuracy and train-test gap vs parameters:", "",
                    md_table(ms.drop(columns="trial_id").sort_values("n_params")), ""]
    return "\n".join(out)


def compare_section(timings: dict) -> str:
    from hpo.report.compare import at_equal_compute
    from hpo.results import RunFolder

    names = [n for n in MNIST if n.startswith("compare/")]
    dirs = [run_dir(n) for n in names if (run_dir(n) / "trials.csv").exists()]
    if len(dirs) < 2:
        return "### compare\n\nnot run yet.\n"
    runs = [RunFolder.read(d) for d in dirs]
    wall = " / ".join(f"{n.split('/')[1]} {timings[n]['wall_s']:.0f} s" for n in names if n in timings)
    return "\n".join([
        "### compare", "", QUESTIONS["compare"], "",
        "- commands: `for s in grid random random_asha tpe tpe_asha pso de; do "
        "hpo run search_spaces/compare/$s.yaml; done`",
        "  then `hpo compare runs/compare_grid runs/compare_random runs/compare_random_asha "
        "runs/compare_tpe runs/compare_tpe_asha runs/compare_pso runs/compare_de -o reports/compare.html`",
        f"- CPU wall time: {wall}", "",
        "Best val_acc reached at equal compute (trial-epochs):", "",
        md_table(at_equal_compute(runs)), ""])


def _sections(path: Path) -> dict[str, str]:
    """`### name` -> that section's text, from an existing STUDIES.md."""
    if not path.exists():
        return {}
    out = {}
    for chunk in path.read_text().split("\n### ")[1:]:
        name = chunk.split("\n", 1)[0].strip()
        out[name] = "### " + chunk.split("\n## ")[0].rstrip() + "\n"
    return out


def cmd_write() -> None:
    timings = _timings()
    parts = [
        "# Studies",
        "",
        "Every classic study is one YAML file in `search_spaces/` and one command. The MNIST and",
        "regression studies below were run for real on full MNIST (from `../shared/datasets`, md5-",
        "verified) on this 2-core CPU machine, one study at a time, with `python scripts/studies.py run`;",
        "this file is written from their run folders by `python scripts/studies.py write`. Test metrics",
        "are those of each trial's best validation epoch; the test set never selects anything.",
        "learning_rate and cnn ran on an otherwise idle machine; the others ran while other work",
        "sometimes shared the two cores (optimizers: 549 s here, 312 s when run alone), so their wall",
        "times are upper bounds. They ran before `execution.pack: auto` became the default (every",
        "trial unpacked); sweeps of the `mlp` now run packed, 1.4-2.2x faster (BENCHMARKS.md,",
        "Trial packing). Each run's",
        "HTML report is `reports/studies/<name>.html` (rebuild with `hpo report runs/studies/<name>`).",
        "",
    ]
    kept = _sections(ROOT / "STUDIES.md")
    for name in MNIST:
        if not name.startswith("compare/"):
            # a study whose run folder is not here keeps the section it had (runs/ is not in git)
            parts.append(section(name, timings) if (run_dir(name) / "trials.csv").exists()
                         else kept.get(name, section(name, timings)))
    full = all((run_dir(n) / "trials.csv").exists() for n in MNIST if n.startswith("compare/"))
    parts.append(compare_section(timings) if full or "compare" not in kept else kept["compare"])
    parts += ["## CIFAR-10 studies (tested on generated files)", "",
              "CIFAR-10 cannot be had on this machine. `cifar10_augmentation.yaml` (small CNN, with vs "
              "without random crop + flip) and `cifar10_resnet18.yaml` (ResNet-18 fine-tuning: head / "
              "last block / all x lr, early stopping) validate and run end to end in "
              "`tests/test_studies.py` on small files the tests write in CIFAR-10's own pickled-batch "
              "format; the loader, augmentation and fine-tuning modes are tested in `tests/test_cifar.py`. "
              "With the data in `$HPO_DATA_DIR/cifar-10-batches-py/` (downloaded when online):", "",
              "    hpo run search_spaces/cifar10_augmentation.yaml --set resources.gpu=1",
              "    hpo run search_spaces/cifar10_resnet18.yaml --set resources.gpu=1", ""]
    (ROOT / "STUDIES.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'STUDIES.md'}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        cmd_run(sys.argv[2:])
    elif len(sys.argv) == 2 and sys.argv[1] == "write":
        cmd_write()
    else:
        sys.exit(__doc__)
