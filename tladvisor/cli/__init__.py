"""The ``tladvisor`` command: a thin layer over :class:`tladvisor.advisor.Advisor` and the plugins.

Errors a user can cause print one line and exit non-zero; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import textwrap
import logging
import os
import sys
import traceback
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tladvisor import __version__

from tladvisor.runtime import interrupts, progress
from tladvisor.errors import TLAdvisorError
from tladvisor.records import MAX_IMAGE_PIXELS
from tladvisor.text import printable

# A pipe or CI log has no width; 80 columns would truncate backbone names and paths.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class Context:
    def __init__(self, plugins_dir: Path | None, debug: bool, threads: int | None = None):
        self.plugins_dir = plugins_dir
        self.debug = debug
        self.threads = threads
        self._host = None

    def computing(self) -> None:
        """Take this process's share of the CPU threads (``--threads``), registered with the other tladvisor
        processes: only the commands that compute (analyze, worker, predict) call it, so a listing command
        neither imports torch nor counts as a neighbour."""
        from tladvisor.runtime.threads import configure_threads

        try:
            configure_threads(self.threads)
        except ValueError as error:  # a bad TLADVISOR_THREADS / OMP_NUM_THREADS
            raise click.UsageError(str(error)) from None

    @property
    def host(self):
        if self._host is None:
            from tladvisor.plugins import PluginHost

            self._host = PluginHost(self.plugins_dir)
        return self._host


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tladvisor")
@click.option("--plugins-dir", type=click.Path(path_type=Path), envvar="TLADVISOR_PLUGINS_DIR",
              help="Folder of *.py plugins to load (also TLADVISOR_PLUGINS_DIR).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for analyze, worker and predict (also TLADVISOR_THREADS; default: this "
                   "machine's cores divided by the tladvisor processes computing on it).")
@click.pass_context
def cli(ctx: click.Context, plugins_dir: Path | None, debug: bool, threads: int | None) -> None:
    """tladvisor: which backbone and which transfer strategy for your data, measured and tuned."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    ctx.obj = Context(plugins_dir, False, threads)
    _turn_on_debug(ctx, None, debug)
    for handler in logging.getLogger().handlers:  # a library's cleanup errors after a stop stay quiet
        if not any(isinstance(f, interrupts.CleanupAfterStop) for f in handler.filters):
            handler.addFilter(interrupts.CleanupAfterStop())


def _turn_on_debug(ctx: click.Context, _param, debug: bool) -> None:
    """``--debug`` before or after the command: tracebacks (through the environment) and debug logging."""
    if debug:
        os.environ["TLADVISOR_DEBUG"] = "1"
        logging.getLogger().setLevel(logging.DEBUG)
        if isinstance(ctx.obj, Context):
            ctx.obj.debug = True


def _cv_folds(value: str) -> str:
    """``--cv-folds``: "auto" or a whole number >= 1, kept as text in the options."""
    from tladvisor.tuning.folds import parse_cv_folds

    try:
        folds = parse_cv_folds(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not 'auto' or a whole number >= 1") from None
    return "auto" if folds is None else str(folds)

@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--path-column", help="Manifest column holding the image paths (default: path, file, image...).")
@click.option("--label-column", help="Manifest column holding the labels (default: label, class, target...).")
@click.option("--text-column", help="Manifest column holding the texts (default: text, sentence, review...).")
@click.option("--modality", type=click.Choice(["auto", "image", "text"]), default="auto", show_default=True,
              help="What the data are; auto: texts when the class folders hold .txt files or the manifest has a "
                   "text column and no path column, else images.")
@click.option("--image-root", type=click.Path(path_type=Path),
              help="Folder the manifest's paths resolve against and may not leave (default: the manifest's folder).")
@click.option("--backbone", "-b", "backbones", multiple=True,
              help="Backbone to measure (repeatable). Default: every backbone with weights available offline.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True,
              help="Reports folder; the run is written to OUT/<run-name>/.")
@click.option("--run-name", help="Name of the run folder (default: derived from the data and options).")
@click.option("--trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Trials to run (0 and no --timeout: advice only); the first are the advice's "
                   "contenders, raced, then Optuna's search.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Wall-clock budget for tuning in seconds: the trial running at the deadline is stopped and "
                   "kept as pruned. Alone: tune until it runs out; with --trials: whichever ends first.")
@click.option("--class-weights", type=click.Choice(["none", "balanced"]), default="none", show_default=True,
              help="Weight the training loss by class (balanced: inverse class frequency) for imbalanced data. "
                   "Trials are still ranked, pruned and kept on plain accuracy.")
@click.option("--cv-folds", default="auto", show_default=True, callback=lambda _c, _p, v: _cv_folds(v),
              help="Score each trial on K cross-validation folds: auto (3 folds when the validation split is too "
                   "small to tell strategies apart and train+val holds at most 1,000 images), 1 (one split), or K.")
@click.option("--image-size", type=click.IntRange(min=16), help="Measure and train at this input size (px).")
@click.option("--max-samples", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Images measured per backbone (a stratified sample).")
@click.option("--val-fraction", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True,
              help="Validation share when the data has no train/val split.")
@click.option("--max-image-pixels", type=click.IntRange(min=1), default=MAX_IMAGE_PIXELS, show_default=True,
              help="Skip images with more pixels than this (decompression-bomb guard).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images per batch when measuring and training (halved once on out-of-memory).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the measured sample, the probes and the Optuna sampler.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Image-decoding worker processes.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Feature and measurement cache, which also holds the decoded-image stores (n images x side^2 "
                   "x 3 bytes per resolution; default: $TLADVISOR_CACHE, else $XDG_CACHE_HOME/tladvisor/"
                   "features, ~/.cache/tladvisor/features without XDG_CACHE_HOME).")
@click.option("--storage", help="Optuna storage URL (default: SQLite in the run folder).")
@click.option("--study", "study_name", help="Optuna study name (default: the run name).")
@click.option("--source-sample", type=click.Path(path_type=Path),
              help="Folder of images from the backbones' source domain, for embedding distances; for texts, a .txt "
                   "file (one text per line) or a folder of .txt files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output (the summary and errors still print).")
@click.pass_obj
def analyze(obj: Context, data: Path, quiet: bool, **kwargs) -> None:
    """Profile DATA, measure each backbone, recommend a strategy (and tune with --trials N)."""
    obj.computing()
    from tladvisor.advisor import Advisor
    from tladvisor.records import AnalysisOptions

    kwargs["backbones"] = tuple(kwargs["backbones"])
    if kwargs["trials"] or kwargs["timeout"]:
        import optuna  # its logger is configured on import, so quieten it after

        optuna.logging.set_verbosity(optuna.logging.INFO if obj.debug else optuna.logging.WARNING)
    options = AnalysisOptions(source=data, plugins_dir=obj.plugins_dir, **kwargs)
    with progress.for_console(err, quiet=quiet) as reporter:
        run = Advisor(options, host=obj.host, progress=reporter.stage).run()
    from tladvisor.cli.summary import print_summary

    print_summary(run, out, err)


@cli.command()
@click.argument("name", required=False)
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
def examples(name: str | None, dest: Path | None, seed: int) -> None:
    """Write the bundled example dataset NAME into DEST (no NAME: list them)."""
    from tladvisor.data.examples import EXAMPLES, write_example

    if name is None:
        width = max(40, (out.width or 100) - 1)
        for example, description in EXAMPLES.items():  # wrapped under the description, not at column 0
            out.print(textwrap.fill(description, width=width, initial_indent=f"{example:13s}", subsequent_indent=" " * 13,
                                    break_on_hyphens=False),
                      markup=False, highlight=False, soft_wrap=True)
        return
    if dest is None:
        raise click.UsageError("give a destination folder: tladvisor examples NAME DEST")
    written = write_example(name, dest, seed=seed)
    out.print(f"wrote example '{name}' to {written}", markup=False, highlight=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def plugins(obj: Context, as_json: bool) -> None:
    """List plugins with their versions and hooks (and any that failed to load)."""
    host = obj.host
    host.backbones()  # registering backbones is where many plugin faults show
    infos = host.plugins()
    if as_json:
        click.echo(json.dumps({"plugins": [vars(i) | {"hooks": list(i.hooks)} for i in infos],
                               "failures": [vars(f) for f in host.failures]}, indent=2))
        return
    table = Table(title="Plugins")
    table.add_column("name", no_wrap=True)
    for column in ("version", "source", "hooks"):
        table.add_column(column)
    for info in infos:
        table.add_row(info.name, info.version, info.source, ", ".join(info.hooks))
    out.print(table)
    for failure in host.failures:
        err.print(f"plugin '{failure.plugin}' failed in {failure.hook}: {failure.error}", markup=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def backbones(obj: Context, as_json: bool) -> None:
    """List registered backbones and whether their weights are available offline now."""
    specs = obj.host.backbones()
    on_demand = obj.host.backbone_name_patterns()
    if as_json:
        click.echo(json.dumps({"backbones": [s.summary() for s in specs.values()],
                               "on_demand": [{"plugin": p, "names": names} for p, names in on_demand]}, indent=2))
    else:
        table = Table(title="Backbones")
        # A narrow terminal folds a long name onto a second line rather than cut a plugin's name to "timm_pl…"
        table.add_column("name", overflow="fold")
        table.add_column("plugin", no_wrap=True, min_width=max((len(s.plugin or "") for s in specs.values()), default=6))
        for column in ("input", "features", "stages"):
            table.add_column(column, justify="right")
        table.add_column("weights offline")
        missing = []
        for spec in specs.values():
            available = spec.weights_available()
            if not available:
                missing.append(spec)
            size = f"{spec.text.max_length} tok" if spec.text else f"{spec.preprocessing.input_size} px"
            table.add_row(spec.name, spec.plugin, size, str(spec.feature_dim),
                          str(spec.n_stages), "yes" if available else "no (see below)")
        out.print(table)
        for plugin, names in on_demand:
            out.print(f"Plugin '{plugin}' also builds backbones by name: {names}", markup=False, highlight=False)
        for spec in missing:  # how to get each missing file: where it goes and where it comes from
            out.print(f"{spec.name}: weights not available offline; {_how_to_get_weights(spec)}",
                      markup=False, highlight=False, soft_wrap=True)
    for failure in obj.host.failures:
        err.print(f"plugin '{failure.plugin}' failed in {failure.hook}: {failure.error}", markup=False)


def _how_to_get_weights(spec) -> str:
    """A download URL and the path it goes to, a path to place a file at, or the plugin's own hint
    (``weights_location`` that is not a path, e.g. timm's "not cached: fetch with `hf download ...`")."""
    location = spec.weights_location.strip()
    if location.startswith("(") and location.endswith(")"):
        location = location[1:-1]
    if spec.weights_url:
        return f"download {spec.weights_url} to {location or '(unknown path)'} (or run once online)"
    if location and Path(location).is_absolute():
        return f"place the weights at {location}"
    return location or "the plugin says nothing of where its weights come from"


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.pass_obj
def report(obj: Context, run_dir: Path) -> None:
    """Re-render RUN_DIR/index.html from its analysis.json (plugin sections included)."""
    from tladvisor.report.writer import rerender

    click.echo(str(rerender(run_dir, host=obj.host)))
    for failure in obj.host.failures:
        err.print(f"plugin '{failure.plugin}' failed in {failure.hook}: {failure.error}", markup=False)


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--text-column", help="Text models: the manifest column holding the texts (default: text, sentence...).")
@click.option("--device", default="auto", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output: aligned columns, CSV (path,label,probability) or JSON with the skipped files.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_obj
def predict(obj: Context, model_dir: Path, images: tuple[Path, ...], text_column: str | None, device: str, fmt: str,
            as_json: bool) -> None:
    """Classify IMAGES (files or folders, searched recursively) with a tuning run's best model.

    MODEL_DIR is the run folder or its best_model folder. Unreadable files are skipped and listed. A model
    trained on texts takes texts: .txt files (one text per line), manifests (CSV/JSONL/Parquet), or - (stdin).
    """
    obj.computing()
    from tladvisor.cli.predict import render, skipped_lines
    from tladvisor.data.wording import counted
    from tladvisor.errors import DatasetError
    from tladvisor.tuning.predict import predict_all

    predictions = predict_all(model_dir, list(images), device=device, host=obj.host, text_column=text_column)
    fmt = "json" if as_json else fmt
    text = render(predictions, fmt)
    if text:
        click.echo(text)
    if fmt != "json":
        for line in skipped_lines(predictions):
            err.print(line, markup=False, highlight=False, soft_wrap=True)
    if not predictions.rows:
        raise DatasetError(f"nothing could be predicted ({counted(len(predictions.skipped), 'input')} skipped)")


def trial_list(numbers) -> str:
    """``trials #2, #3`` (``trial #2``; ``no trial``): trials named as progress, summary and report name them."""
    numbers = list(numbers)
    if not numbers:
        return "no trial"
    return ("trial " if len(numbers) == 1 else "trials ") + ", ".join(f"#{n}" for n in numbers)


def worker_summary(result) -> str:
    """The worker's last line: the trials it ran and the study's finished ones against its budget."""
    from tladvisor.report.tuning_notes import budget_text

    tuning = result.tuning
    finished = sum(t.state in ("COMPLETE", "PRUNED") for t in tuning.trials)
    return (f"{result.worker} ran {trial_list(result.trials_run)}; study '{tuning.study_name}' has finished "
            f"{budget_text(finished, tuning.requested_trials, result.timeout)}")


@cli.command()
@click.option("--storage", required=True,
              help="The study's storage, as given to analyze --storage: postgresql://USER@HOST:PORT/DB, "
                   "sqlite:////ABS/PATH/study.db, or a journal file path.")
@click.option("--study", "study_name", required=True, help="The study name (analyze --study; by default the run name).")
@click.option("--data", type=click.Path(path_type=Path),
              help="The dataset on this machine, if it is not at the path analyze read it from.")
@click.option("--image-root", type=click.Path(path_type=Path),
              help="The manifest's image folder on this machine (analyze --image-root), if it is not at the path "
                   "analyze read it from.")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Where to keep the best model and report, if the analyze run's folder is not reachable here.")
@click.option("--trials", type=click.IntRange(min=1), help="At most this many trials from this worker "
                                                            "(default: until the study's budget is met).")
@click.option("--device", help="cpu, cuda or cuda:N (default: the study's).")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for the study to be created.")
@click.pass_obj
def worker(obj: Context, storage: str, study_name: str, data: Path | None, image_root: Path | None,
           run_dir: Path | None, trials: int | None, device: str | None, wait: float) -> None:
    """Join a tuning study started by `analyze --storage URL --study NAME`; run trials until its budget is met."""
    obj.computing()
    import optuna

    from tladvisor.tuning.worker import run_worker

    optuna.logging.set_verbosity(optuna.logging.INFO if obj.debug else optuna.logging.WARNING)
    with progress.for_console(err) as reporter:
        reporter.stage(f"worker: study {study_name}")
        result = run_worker(storage, study_name, host=obj.host, plugins_dir=obj.plugins_dir, data=data,
                            image_root=image_root, run_dir=run_dir, trials=trials, device=device, wait=wait)
    tuning = result.tuning
    out.print(worker_summary(result), markup=False, highlight=False)
    if tuning.best is not None:
        from tladvisor.tuning.folds import cv_accuracy_text

        out.print(f"Best trial: #{tuning.best.number} val accuracy {cv_accuracy_text(tuning.best.value, tuning.best.folds)}",
                  markup=False)
    if result.report is not None:
        out.print(f"Report: {result.report}", markup=False, highlight=False)


def _set_threads(ctx: click.Context, _param, threads: int | None) -> None:
    """``--threads`` after a computing command's name, as well as before it."""
    if threads is not None and isinstance(ctx.obj, Context):
        ctx.obj.threads = threads


for _command in cli.commands.values():  # every command takes --debug after its name too
    _command.params.append(click.Option(["--debug"], is_flag=True, expose_value=False, callback=_turn_on_debug,
                                        help="Show tracebacks and debug logging."))
for _name in ("analyze", "worker", "predict"):  # and the commands that compute take --threads there too
    cli.commands[_name].params.append(click.Option(
        ["--threads"], type=click.IntRange(min=1), expose_value=False, callback=_set_threads,
        help="CPU threads for this process (also before the command, or TLADVISOR_THREADS)."))


def main(argv: list[str] | None = None) -> int:

    def say(text: str) -> None:
        # One line, whatever the message holds (a plugin's multi-line error, a file name that is not
        # UTF-8, which Python holds as lone surrogates and a strict stream cannot encode).
        text = " ".join(str(text).split())
        err.print(printable(text), markup=False, highlight=False, soft_wrap=True)

    # --debug sets process-wide state (an environment variable, the root logger's level); a caller that
    # runs main() in-process (tests, notebooks) gets its own back afterwards.
    debug_before, level_before = os.environ.get("TLADVISOR_DEBUG"), logging.getLogger().level
    try:
        return _main(argv, say)
    finally:
        if debug_before is None:
            os.environ.pop("TLADVISOR_DEBUG", None)
        else:
            os.environ["TLADVISOR_DEBUG"] = debug_before
        logging.getLogger().setLevel(level_before)


def _main(argv: list[str] | None, say) -> int:
    from tladvisor.runtime.interrupts import Interrupted, stop_on_signals

    try:
        with stop_on_signals():  # SIGINT/SIGTERM: close the trial, write what exists, exit 130/143
            cli.main(args=argv, prog_name="tladvisor", standalone_mode=False)
        return 0
    except Interrupted as stop:
        say(stop.summary())
        return stop.exit_code
    except click.exceptions.Abort:
        say("interrupted")
        return 130
    except click.UsageError as error:  # one line, like every other error; the usage is one --help away
        where = error.ctx.command_path if error.ctx is not None else "tladvisor"
        say(f"error: {error.format_message()} (see `{where} --help`)")
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except TLAdvisorError as error:
        if os.environ.get("TLADVISOR_DEBUG"):
            traceback.print_exc()
        say(f"error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as error:  # a bug: say so in one line, the traceback with --debug
        if os.environ.get("TLADVISOR_DEBUG"):
            traceback.print_exc()
        say(f"internal error: {type(error).__name__}: {error} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
