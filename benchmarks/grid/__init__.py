"""The honest grid (issue #22): every transfer config trained on a fixed schedule at several learning rates.

- ``run.py``: the grid itself, in resumable units (``--seed``, ``--jobs``, ``--rerun-climbing``)
- ``plan.py``: what it trains: configs resolved to a backbone's depths, the rate ladder
- ``logic.py``: pure logic (the schedule, flat curves, rates at an edge, the settings key, unit files)
- ``summary.py``: reading the units: each config's rate chosen on validation, its test accuracy, fairness
- ``estimate.py``: what is left and what it will cost, from the units already made
- ``train_step.py``: the cost of one training step by how much trains (how the grid was sized)
- ``reference_loop.py``: the product's trainer against a plain reference loop
"""
