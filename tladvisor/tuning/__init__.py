"""Tuning: train each transfer strategy on a backbone and search them with Optuna.

- :mod:`.strategies`: what each strategy freezes and each parameter group's learning rate;
- :mod:`.trainer`: the epoch loop (early stopping, divergence, out-of-memory retry);
- :mod:`.search`: the built-in search space and the recommendation as the first trial;
- :mod:`.study`: the resumable Optuna study (:class:`~.study.Tuner`);
- :mod:`.model_io` / :mod:`.predict`: the best model on disk, and classifying images with it.
"""
