"""The per-epoch bookkeeping every built-in loop shares (trainables/epochs.py), without torch."""

from __future__ import annotations

import math

from hpo.contract import EarlyStop, Settings
from hpo.trainables.epochs import EpochBook
from hpo.trainables.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS


def row(loss: float, acc: float) -> dict[str, float]:
    return {"train_loss": loss, "train_acc": acc, "val_loss": loss, "val_acc": acc}


def test_best_epoch_carries_its_test_metrics_and_test_runs_only_on_improvement():
    book = EpochBook(Settings(max_epochs=4, metric="val_acc"), CLASSIFICATION_METRICS)
    calls = []

    def test() -> dict[str, float]:
        calls.append(1)
        return {"test_loss": 0.5, "test_acc": 0.9 + len(calls) / 100}

    rows = [book.end_epoch(e, row(1.0, acc), test)[0] for e, acc in enumerate([0.5, 0.7, 0.6, 0.7])]
    assert len(calls) == 2  # epochs 1 and 2 improved; 3 fell back, 4 only tied
    assert [r["best_epoch"] for r in rows] == [1, 2, 2, 2]
    assert [r["test_acc"] for r in rows] == [0.91, 0.92, 0.92, 0.92]
    assert rows[-1]["epoch"] == 4 and not rows[-1]["diverged"]


def test_divergence_reports_the_worst_values_and_ends_the_trial():
    book = EpochBook(Settings(max_epochs=5, metric="val_mse", mode="min"), REGRESSION_METRICS)
    m, ends = book.end_epoch(0, {"train_mse": 0.1, "val_mse": 0.2}, lambda: {"test_mse": 0.3})
    assert not ends and m["test_mse"] == 0.3
    m, ends = book.end_epoch(1, {"train_mse": math.nan, "val_mse": math.inf}, lambda: {"test_mse": 9.0})
    assert ends and m["diverged"] and m["train_mse"] == math.inf and m["val_mse"] == math.inf
    assert m["test_mse"] == 0.3 and m["best_epoch"] == 1


def test_early_stopping_and_state_round_trip():
    s = Settings(max_epochs=10, metric="val_acc", early_stopping=EarlyStop(patience=2, min_delta=0.01))
    book = EpochBook(s, CLASSIFICATION_METRICS)
    book.end_epoch(0, row(1, 0.5), lambda: {"test_loss": 1.0, "test_acc": 0.5})
    m, ends = book.end_epoch(1, row(1, 0.505), lambda: {"test_loss": 1.0, "test_acc": 0.5})
    assert not ends
    restored = EpochBook(s, CLASSIFICATION_METRICS, book.state())
    assert list(restored.epochs()) == list(range(2, 10)) and not restored.finished
    m, ends = restored.end_epoch(2, row(1, 0.50), lambda: {})
    assert ends and "no val_acc gain above 0.01 in 2 epoch(s)" in m["early_stopped"]
    assert EpochBook(s, CLASSIFICATION_METRICS, restored.state()).finished


def test_list_results_of_the_best_model_are_reported_every_tenth_and_at_the_end():
    book = EpochBook(Settings(max_epochs=20, metric="val_mse", mode="min"), REGRESSION_METRICS)
    reported = []
    for e in range(20):
        m, _ = book.end_epoch(e, {"train_mse": 1.0 / (e + 1), "val_mse": 1.0 / (e + 1)},
                              lambda e=e: {"test_mse": 1.0, "surface": [float(e)]})
        if "surface" in m:
            reported.append((m["epoch"], m["surface"]))
    assert reported == [(e, [float(e - 1)]) for e in range(2, 21, 2)]


def test_with_test_epochs_the_best_weights_are_tested_only_where_a_report_must_carry_them():
    book = EpochBook(Settings(max_epochs=6, metric="val_acc", test_epochs=frozenset({2, 6})),
                     CLASSIFICATION_METRICS)
    kept, tested = [], []

    def test() -> dict[str, float]:
        tested.append(book.best["best_epoch"])
        return {"test_loss": 0.1, "test_acc": book.best["best_epoch"] / 10}

    rows = []
    for e, acc in enumerate([0.5, 0.6, 0.7, 0.65, 0.8, 0.75]):
        rows.append(book.end_epoch(e, row(1.0, acc), test, keep=lambda e=e: kept.append(e + 1))[0])
    assert kept == [1, 2, 3, 5]  # every improvement keeps its weights
    assert tested == [2, 5]  # epoch 2 (a test epoch) and the last, each on the best so far
    acc = [r["test_acc"] for r in rows]
    assert math.isnan(acc[0]) and acc[1] == 0.2 and all(map(math.isnan, acc[2:5])) and acc[5] == 0.5
    assert [r["best_epoch"] for r in rows] == [1, 2, 3, 3, 5, 5]


def test_with_test_epochs_a_trial_that_ends_itself_is_tested_then_and_a_restored_book_goes_on():
    s = Settings(max_epochs=8, metric="val_acc", test_epochs=frozenset({8}),
                 early_stopping=EarlyStop(patience=2))
    book = EpochBook(s, CLASSIFICATION_METRICS)
    calls = []

    def test() -> dict[str, float]:
        calls.append(current.best["best_epoch"])
        return {"test_loss": 0.1, "test_acc": 0.9}

    current = book
    book.end_epoch(0, row(1, 0.5), test, keep=lambda: None)
    book.end_epoch(1, row(1, 0.6), test, keep=lambda: None)
    restored = current = EpochBook(s, CLASSIFICATION_METRICS, book.state())  # epoch 2 untested
    assert calls == [] and restored.best["best_epoch"] == 2
    restored.end_epoch(2, row(1, 0.55), test, keep=lambda: None)
    m, ends = restored.end_epoch(3, row(1, 0.55), test, keep=lambda: None)
    assert ends and calls == [2] and m["test_acc"] == 0.9  # early-stopped: tested at its end
    diverging = current = EpochBook(s, CLASSIFICATION_METRICS)
    diverging.end_epoch(0, row(1, 0.5), test, keep=lambda: None)
    m, ends = diverging.end_epoch(1, row(math.nan, math.nan), test, keep=lambda: None)
    assert ends and m["diverged"] and calls == [2, 1] and m["test_acc"] == 0.9
