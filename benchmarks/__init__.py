"""The benchmarks: scripts that print numbers and write result files, one folder per question they answer.

Run each as a module from the repository root, e.g. ``.venv/bin/python -m benchmarks.grid.run --seed 0``.

- ``advice/``: is the advice right out of task? (the advisor against every strategy, leave-one-task-out
  methods, the size sweep, the text tasks)
- ``grid/``: the honest grid (issue #22): every strategy trained until flat at several rates, its plan,
  its cost, its fairness, and the product trainer against a reference loop
- ``ranking/``: do the transfer measures rank backbones the way training does?
- ``similarity/``: does the similarity fall as data moves away from the source?
- ``speed/``: what each stage costs against a bare loop (embedding, measuring, trials, threads, profiling)
- ``tasks/``: the one task registry (image corpus, the suite's tasks, text tasks) every question draws on
- ``common/``: the arithmetic, reports, worker processes and paths the questions share
- ``run_all.py``: the suite (advice, similarity, tuning, throughput) in one resumable run

Results a document quotes are written under ``benchmarks/results/`` (committed); work folders, caches and
logs under ``reports/benchmarks/`` (git-ignored). docs/benchmarks.md has the table from each number the
README states to its command, result file and test.
"""
