"""Is the advice right out of task?

- ``suite.py``, ``suite_summary.py``: the advisor's pick against every strategy trained with the same budget (a unit
  of run_all.py), and its summary: regret, compute, the threshold sweeps
- ``methods.py``, ``loto.py``: advice methods (the rule, a best constant, a meta-predictor, prior + race)
  judged leave-one-task-out and leave-one-family-out over the honest grid's results
- ``fit_prior.py``: the gain prior fitted on every finished task, kept as a data file with its provenance
- ``size_sweep.py``: where fine-tuning starts to beat feature extraction as the training set grows
- ``text_tasks.py``: the strategies on the text tasks, and the advice against them
"""
