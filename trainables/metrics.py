"""Metric declarations shared by trainables: name -> "min" | "max"."""

CLASSIFICATION_METRICS = {
    "train_loss": "min", "train_acc": "max", "val_loss": "min", "val_acc": "max",
    "test_loss": "min", "test_acc": "max", "epoch_time_s": "min",
}
REGRESSION_METRICS = {"train_mse": "min", "val_mse": "min", "test_mse": "min", "epoch_time_s": "min"}
