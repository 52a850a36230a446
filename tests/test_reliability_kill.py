"""Killing ``tladvisor analyze --trials N`` at random points, again and again, loses no finished trial.

The real command runs in a subprocess with the tiny backbone. It is stopped once with SIGTERM from
outside (exit 143, one line), then killed with SIGKILL at random moments: mostly while trials run,
some anywhere from start-up to the report. After every kill the study is read back: every trial that
had finished is still there with the same number, parameters and value, and whatever analysis.json and
best model exist are whole. Then the same command, run to its end, fills the study to exactly N finished
trials without repeating any, and analysis.json describes that study.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tladvisor.report.analysis_json import load_analysis
from tladvisor.tuning import model_io

from helpers import TINY_PLUGIN, write_image_folder

N_TRIALS = 20
SIGKILLS = 10
FINISHED = ("COMPLETE", "PRUNED")
SEED = 20240611  # the kill moments are random but the same in every CI run
WAIT_LIMIT_S = 120  # no single wait may hang the suite


def count_trials(db: Path, states: tuple[str, ...] = ()) -> int:
    """Trials in the study file now (in ``states``, any when empty); -1 while it cannot be read."""
    where = f" WHERE state IN ({', '.join('?' * len(states))})" if states else ""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as connection:
            return connection.execute(f"SELECT COUNT(*) FROM trials{where}", states).fetchone()[0]
    except sqlite3.Error:
        return -1


def wait_for(condition, proc: subprocess.Popen, limit: float = WAIT_LIMIT_S) -> bool:
    """Poll until ``condition()`` or the process ends; False when it ended first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if condition():
            return True
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting after {limit} s")


def finished_trials(db: Path) -> dict[int, tuple[str, dict, float | None]]:
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{db}")
    return {t.number: (t.state.name, dict(t.user_attrs.get("params") or t.params), t.value)
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))}


def check_outputs_whole(run_dir: Path) -> None:
    """What a later run (or a reader) trusts is never half-written."""
    if (run_dir / "analysis.json").exists():
        assert isinstance(load_analysis(run_dir)["schema_version"], int)
    config = model_io.read_config(run_dir / "best_model")
    if config is not None:
        assert {"backbone", "val_accuracy", "trial_number", "classes"} <= set(config)
        assert (run_dir / "best_model" / model_io.MODEL_FILE).stat().st_size > 0


def test_sigterm_and_repeated_sigkill_never_lose_or_repeat_a_finished_trial(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny_plugin.py").write_text(TINY_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=10)
    run_dir = tmp_path / "reports" / "run"
    db = run_dir / "study.db"
    command = [sys.executable, "-m", "tladvisor.cli", "--plugins-dir", str(plugins), "analyze", str(data),
               "--backbone", "tiny_cnn", "--out", str(tmp_path / "reports"), "--run-name", "run",
               "--cache-dir", str(tmp_path / "cache"), "--trials", str(N_TRIALS), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("TLADVISOR_PLUGINS_DIR", None)
    rng = random.Random(SEED)

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # 1. SIGTERM from outside once the first trial runs: a clean stop, exit 143, one line.
    started = time.monotonic()
    proc = start()
    assert wait_for(lambda: count_trials(db) > 0, proc), proc.communicate()[1]
    to_first_trial = time.monotonic() - started
    proc.terminate()
    _, stderr = proc.communicate(timeout=WAIT_LIMIT_S)
    assert proc.returncode == 143, stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted by SIGTERM while tuning: kept"), stderr
    assert last_line.endswith("run the same command again to resume")
    assert "Traceback" not in stderr
    check_outputs_whole(run_dir)
    seen = finished_trials(db)

    # 2. SIGKILL at random moments; after each, every trial that had finished is unchanged.
    kills = 0
    moments = []
    while kills < SIGKILLS:
        before, finished_before = count_trials(db), count_trials(db, FINISHED)
        proc = start()
        if kills % 3 == 2:  # anywhere: start-up, loading, measuring (from the cache), settling, the report
            delay = rng.uniform(0.2, 1.3) * to_first_trial
            moments.append(f"{delay:.1f}s after start")
            most = 1
        else:  # while trials run: a random moment after this run asked for its first trial
            wait_for(lambda before=before: count_trials(db) > before, proc)
            delay = rng.uniform(0.0, 1.5)
            moments.append(f"{delay:.1f}s into tuning")
            most = 2
        # ...and before it finishes more than `most` trials, so that ten kills never fill the study,
        # however fast this machine is compared with the first run's start-up
        until = time.monotonic() + delay
        while (time.monotonic() < until and proc.poll() is None
               and count_trials(db, FINISHED) < finished_before + most):
            time.sleep(0.02)
        if proc.poll() is not None:  # it finished first: the study was already full
            _, stderr = proc.communicate()
            assert proc.returncode == 0, stderr
            break
        proc.kill()
        proc.communicate(timeout=WAIT_LIMIT_S)
        kills += 1
        now = finished_trials(db)
        lost_or_changed = {n: t for n, t in seen.items() if now.get(n) != t}
        assert not lost_or_changed, f"after kill {kills} ({moments[-1]}): {lost_or_changed} vs {now}"
        assert len(now) <= N_TRIALS
        check_outputs_whole(run_dir)
        seen = now
    assert kills == SIGKILLS, f"the study filled up after {kills} kills; raise N_TRIALS"

    # 3. The same command to its end: exactly N finished trials, the earlier ones untouched, none twice.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT_LIMIT_S * 3)
    assert result.returncode == 0, result.stderr
    final = finished_trials(db)
    assert len(final) == N_TRIALS
    assert all(final[n] == t for n, t in seen.items())
    param_sets = [json.dumps(params, sort_keys=True) for _, params, _ in final.values()]
    assert len(set(param_sets)) == len(param_sets), "a finished trial was run again"

    analysis = load_analysis(run_dir)
    stored = {t["number"]: t for t in analysis["tuning"]["trials"]}
    assert {n for n, t in stored.items() if t["state"] in ("COMPLETE", "PRUNED")} == set(final)
    assert all(stored[n]["params"] == params for n, (_, params, _) in final.items())
    assert "interrupted" not in analysis["environment"]
    config = model_io.read_config(run_dir / "best_model")
    assert config is not None
    best = analysis["tuning"]["best"]
    assert (config["trial_number"], config["val_accuracy"]) == (best["number"], best["value"])
    leftovers = [p.name for p in run_dir.iterdir() if p.name.startswith(".") or p.name.endswith(".previous")]
    assert not leftovers, leftovers
    print(f"\nSIGTERM 1, SIGKILL {kills} ({', '.join(moments)}); {len(final)} finished trials kept")
