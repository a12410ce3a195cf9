"""A researcher's own project: a model, data, and a training function, tuned with hpo."""
