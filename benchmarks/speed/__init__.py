"""What each stage costs, against a bare loop doing the same work: ``analyze.py`` (advice-only analysis, cold
and warm), ``measure_stage.py``, ``data_path.py``, ``cached_trials.py``, ``load_profile.py``, ``threads.py`` (two
processes on one machine), ``text_embedding.py``, and the suite's ``throughput.py`` and ``tuning.py``."""
