"""User-facing errors: what was wrong, where, and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A problem with user input found before any trial starts.

    The CLI prints it as one message and exits with code 2, without a traceback.
    """

    def __init__(self, message: str, *, field: str | None = None, file: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.file = file

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        return f"{where}: {self.message}" if where else self.message


class StorageFault(Exception):
    """The run's storage stopped taking writes (full, read-only, over quota): the run stops at
    once, keeps what was written and resumes once the storage is fixed."""


# the errors that mean "the storage stopped taking writes", and what each means in words
STORAGE_ERRNOS = {28: "is full (no space left on device)", 30: "became read-only",
                  122: "is over its disk quota", 27: "refused a write (file too large)"}


# What people call hpo's parameter names elsewhere (papers, Keras, PyTorch, other tools): a
# misspelt or foreign name close to one of these suggests hpo's own name.
ALIASES = {
    "learning_rate": "lr", "learningrate": "lr", "eta": "lr", "step_size": "lr",
    "l2": "weight_decay", "l2_reg": "weight_decay", "l2_lambda": "weight_decay", "wd": "weight_decay",
    "decay": "weight_decay", "regularization": "weight_decay", "lambda": "weight_decay",
    "penalty": "reg_type", "regularizer": "reg_type",
    "batchsize": "batch_size", "bs": "batch_size", "batch": "batch_size", "minibatch": "batch_size",
    "epochs": "max_epochs", "n_epochs": "max_epochs", "num_epochs": "max_epochs",
    "layers": "hidden", "hidden_sizes": "hidden", "hidden_layers": "hidden", "units": "hidden",
    "width": "hidden", "drop_out": "dropout", "dropout_rate": "dropout", "opt": "optimizer",
    "optim": "optimizer", "beta": "momentum", "activation_function": "activation", "act": "activation",
    "batchnorm": "batch_norm", "bn": "batch_norm",
}


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """' Did you mean `x`?' for the closest option (a prefix match first), or for the option
    a known other name of it points to (`learning_rate`, even misspelt, -> `lr`), or ''."""
    opts = list(options)
    name = str(name)
    prefix = [o for o in opts if o.startswith(name) or name.startswith(o)]
    close = prefix or difflib.get_close_matches(name, opts, n=1, cutoff=0.6)
    if not close:
        aliases = {a: t for a, t in ALIASES.items() if t in opts}
        hit = difflib.get_close_matches(name.lower(), list(aliases), n=1, cutoff=0.75)
        close = [aliases[hit[0]]] if hit else []
    return f" Did you mean `{close[0]}`?" if close else ""


def unknown_name(kind: str, name: object, options: Iterable[str]) -> str:
    """The message for a name that is not one of `options`."""
    opts = sorted(options)
    return f"unknown {kind} `{name}`.{did_you_mean(str(name), opts)} Allowed: {', '.join(opts)}."
