"""Do the measures rank backbones the way training does? ``run.py`` (weighted Kendall tau and top-pick regret
per measure over the task corpus) and ``logic.py`` (its pure arithmetic)."""
