"""The built-in report plugin: write_report through the plugin host, rerender, and the runs index."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tladvisor.builtin.report import write_report
from tladvisor.report.writer import rerender
from tladvisor.errors import OutputError
from tladvisor.plugins import PluginHost
from tladvisor.records import ReportSection
from tladvisor.report.analysis_json import SCHEMA_VERSION
from tladvisor.report.demo import demo_run
from tladvisor.report.runs_index import MARKER, collect_runs


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.append(dict(attrs)["href"])


def links(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


@pytest.fixture
def host() -> PluginHost:
    return PluginHost(load_entry_points=False, default_plugins=("tladvisor.builtin.report",))


def test_hook_write_report_writes_analysis_json_and_the_report(tmp_path: Path, host: PluginHost) -> None:
    run = demo_run(tmp_path, run_id="run-a")
    section = ReportSection("notes", "Plugin notes", "<p>from a plugin</p>", order=100)
    results = host.call_each("write_report", run=run, out_dir=run.out_dir, sections=[section])
    assert host.failures == []
    ((plugin, paths),) = results
    assert plugin == "tladvisor.builtin.report"
    assert paths == [run.out_dir / "analysis.json", run.out_dir / "index.html"]
    analysis = json.loads(paths[0].read_text())
    assert analysis["schema_version"] == SCHEMA_VERSION and analysis["run_id"] == "run-a"
    html = paths[1].read_text()
    assert "<p>from a plugin</p>" in html and "resnet18" in html
    assert sorted(p.name for p in run.out_dir.iterdir()) == ["analysis.json", "index.html"]  # no temp files
    assert "run-a/index.html" in links((run.out_dir.parent / "index.html").read_text())


def test_hook_write_report_unwritable_folder_is_one_line(tmp_path: Path, host: PluginHost) -> None:
    run = demo_run(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    with pytest.raises(OutputError, match="blocker") as error:
        write_report(run=run, out_dir=blocker / "run", sections=[])
    assert "\n" not in str(error.value)
    with pytest.raises(OutputError, match="blocker"):  # a user's mistake reaches the user through the host
        host.call_each("write_report", run=run, out_dir=blocker / "run", sections=[])


def test_rerender_from_analysis_json_alone_reproduces_the_report(tmp_path: Path) -> None:
    run = demo_run(tmp_path, run_id="run-a")
    _, report_path = write_report(run=run, out_dir=run.out_dir, sections=[])
    first = report_path.read_text()
    report_path.unlink()
    assert rerender(run.out_dir) == report_path
    assert report_path.read_text() == first
    again = rerender(run.out_dir, sections=[ReportSection("extra", "Extra", "<p>extra</p>")])
    assert "<p>extra</p>" in again.read_text()


def test_hook_write_report_a_re_render_refreshes_every_writer_not_only_the_html(tmp_path: Path, write_plugin) -> None:
    """#25 item 4: `tladvisor report` called render_report directly, so another plugin's output went stale."""
    folder = write_plugin("summary_writer", '''
        import json
        from pathlib import Path

        from tladvisor import hookimpl

        @hookimpl
        def write_report(run, out_dir, sections, analysis):
            data = analysis if run is None else {"run_id": run.run_id, "tuning": None}
            path = Path(out_dir) / "summary.txt"
            path.write_text(f"{data['run_id']} trials={len((data.get('tuning') or {}).get('trials') or ())}")
            return [path]
    ''')
    host = PluginHost(folder, load_entry_points=False)
    run = demo_run(tmp_path, run_id="run-a")
    run.out_dir.mkdir(parents=True)  # the hook's contract: out_dir exists (analyze creates it)
    host.call_each("write_report", run=run, out_dir=run.out_dir, sections=[])
    assert host.failures == []
    assert (run.out_dir / "summary.txt").read_text() == "run-a trials=0"  # the plugin's first write
    assert rerender(run.out_dir, host=host) == run.out_dir / "index.html" and host.failures == []
    assert (run.out_dir / "summary.txt").read_text() == "run-a trials=9"  # rewritten from analysis.json
    assert "resnet18" in (run.out_dir / "index.html").read_text()
    old_style = write_plugin("old_writer", '''
        from tladvisor import hookimpl

        @hookimpl
        def write_report(run, out_dir, sections):
            return [run.out_dir / "never.txt"]  # written for a run: would fail on a re-render's None
    ''')
    older = PluginHost(old_style, load_entry_points=False)
    assert rerender(run.out_dir, host=older).is_file() and older.failures == []  # left alone, not failed


def test_rerender_refuses_a_newer_schema(tmp_path: Path) -> None:
    run = demo_run(tmp_path)
    analysis_path, _ = write_report(run=run, out_dir=run.out_dir, sections=[])
    analysis = json.loads(analysis_path.read_text())
    analysis_path.write_text(json.dumps(analysis | {"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(OutputError, match="newer than this tladvisor reads"):
        rerender(run.out_dir)


def test_runs_index_lists_every_run_newest_first(tmp_path: Path) -> None:
    older = demo_run(tmp_path, run_id="run-a", created="2025-01-01T09:00:00+00:00")
    newer = replace(demo_run(tmp_path, run_id="run b#2", created="2025-02-01T09:00:00+00:00"),
                    tuning=None)
    write_report(run=older, out_dir=older.out_dir, sections=[])
    write_report(run=newer, out_dir=newer.out_dir, sections=[])
    (tmp_path / "reports" / "not-a-run").mkdir()  # folders without analysis.json are not runs
    index = (tmp_path / "reports" / "index.html").read_text()
    assert links(index) == ["run%20b%232/index.html", "run-a/index.html"]
    assert index.count("<tr") == 1 + 2 and "2 runs" in index
    assert "partial freeze" in index and "0.884" in index and "35 images · 4 classes" in index
    assert MARKER in index


def test_runs_index_shows_a_broken_run_with_its_error(tmp_path: Path) -> None:
    run = demo_run(tmp_path, run_id="run-a")
    write_report(run=run, out_dir=run.out_dir, sections=[])
    broken = tmp_path / "reports" / "broken"
    broken.mkdir()
    (broken / "analysis.json").write_text("{not json")
    rows = {row["folder"]: row for row in collect_runs(tmp_path / "reports")}
    assert rows["run-a"]["error"] is None and rows["run-a"]["backbone"] == "resnet18"
    assert "is not valid JSON" in rows["broken"]["error"] and not rows["broken"]["has_report"]


def test_someone_elses_index_html_is_never_replaced(tmp_path: Path) -> None:
    run = demo_run(tmp_path, run_id="run-a")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my home page</h1>")
    write_report(run=run, out_dir=site / "run-a", sections=[])  # outside the run's --out folder
    assert (site / "index.html").read_text() == "<h1>my home page</h1>"
    assert (site / "run-a" / "index.html").is_file()


def test_hook_report_sections_are_collected_and_placed_by_order(tmp_path: Path, write_plugin) -> None:
    folder = write_plugin("notes", '''
        from markupsafe import escape
        from tladvisor import hookimpl
        from tladvisor.records import ReportSection

        @hookimpl
        def report_sections(run):
            return [ReportSection("class-notes", "Class notes",
                                  "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in run.dataset.classes) + "</ul>",
                                  order=25)]
        ''')
    write_plugin("broken_notes", '''
        from tladvisor import hookimpl

        @hookimpl
        def report_sections(run):
            raise RuntimeError("no notes today")
        ''')
    host = PluginHost(folder, load_entry_points=False, default_plugins=("tladvisor.builtin.report",))
    run = demo_run(tmp_path, classes=("a<b", "c", "d", "e"))
    sections = [s for _, found in host.call_each("report_sections", run=run) for s in found]
    assert [s.id for s in sections] == ["class-notes"]
    assert [(f.plugin, f.hook, f.error) for f in host.failures] == [
        ("broken_notes", "report_sections", "RuntimeError: no notes today")]
    run = replace(run, plugin_failures=tuple(host.failures))
    host.call_each("write_report", run=run, out_dir=run.out_dir, sections=sections)
    html = (run.out_dir / "index.html").read_text()
    order = [html.index(f'id="{name}"') for name in ("dataset", "class-notes", "similarity")]
    assert order == sorted(order)  # order 25 sits between the dataset (20) and similarity (30)
    assert "<li>a&lt;b</li>" in html and "no notes today" in html  # the failure is in the report too


SECTION_FROM_ANALYSIS = '''
    from markupsafe import escape
    from tladvisor import hookimpl
    from tladvisor.records import ReportSection

    @hookimpl
    def report_sections(run, analysis):
        classes = analysis["dataset"]["classes"]
        trials = len((analysis.get("tuning") or {}).get("trials") or ())
        return [ReportSection("class-notes", "Class notes",
                              "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in classes) + "</ul>"
                              + f"<p>{trials} trials noted</p>", order=25)]
    '''


def test_hook_report_sections_survive_a_rerender_and_a_worker_refresh(tmp_path: Path, write_plugin) -> None:
    from click.testing import CliRunner

    from tladvisor.advisor import Advisor
    from tladvisor.cli import cli
    from tladvisor.tuning.worker import refresh_report

    folder = write_plugin("notes", SECTION_FROM_ANALYSIS)
    host = PluginHost(folder, load_entry_points=False, default_plugins=("tladvisor.builtin.report",))
    run = demo_run(tmp_path, classes=("a<b", "c", "d", "e"))
    Advisor(run.options, host=host).write(run)
    report_path = run.out_dir / "index.html"
    first = report_path.read_text()
    assert "<li>a&lt;b</li>" in first and f"<p>{len(run.tuning.trials)} trials noted</p>" in first
    assert host.failures == []

    result = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "report", str(run.out_dir)])
    assert result.exit_code == 0, result.output
    assert report_path.read_text() == first  # the plugin's section is drawn again, the same

    fewer = replace(run.tuning, trials=run.tuning.trials[:2])
    refresh_report(run.out_dir, fewer, host=PluginHost(folder, load_entry_points=False,
                                                        default_plugins=("tladvisor.builtin.report",)))
    refreshed = report_path.read_text()
    assert "<li>a&lt;b</li>" in refreshed and "<p>2 trials noted</p>" in refreshed  # from the refreshed analysis


def test_the_first_render_sections_see_the_failures_analysis_json_holds(tmp_path: Path, write_plugin) -> None:
    from click.testing import CliRunner

    from tladvisor.advisor import Advisor
    from tladvisor.cli import cli

    write_plugin("broken_notes", '''
        from tladvisor import hookimpl

        @hookimpl
        def report_sections(run):
            raise RuntimeError("no notes today")
        ''')
    folder = write_plugin("failure_notes", '''
        from markupsafe import escape
        from tladvisor import hookimpl
        from tladvisor.records import ReportSection

        @hookimpl
        def report_sections(analysis):
            seen = ", ".join(f["plugin"] for f in analysis.get("plugin_failures") or ())
            return [ReportSection("failure-notes", "Failures", f"<p>failures seen: {escape(seen)}.</p>")]
        ''')
    host = PluginHost(folder, load_entry_points=False, default_plugins=("tladvisor.builtin.report",))
    run = demo_run(tmp_path, classes=("a", "b", "c"))
    Advisor(run.options, host=host).write(run)
    report_path = run.out_dir / "index.html"
    first = report_path.read_text()
    assert "<p>failures seen: broken_notes.</p>" in first  # as analysis.json lists them
    assert [f.plugin for f in host.failures] == ["broken_notes"]  # recorded once
    stored = json.loads((run.out_dir / "analysis.json").read_text())
    assert [f["plugin"] for f in stored["plugin_failures"]] == ["broken_notes"]

    result = CliRunner().invoke(cli, ["--plugins-dir", str(folder), "report", str(run.out_dir)])
    assert result.exit_code == 0, result.output
    assert report_path.read_text() == first  # a re-render sees the same list


def test_the_runs_index_gives_one_accuracy_format_and_readable_dates():
    """#26 item 7: best accuracy printed 1, 0.88, 0.873 side by side, dates as raw ISO strings."""
    from tladvisor.report.runs_index import readable_date
    from tladvisor.report.view import accuracy_text

    assert [accuracy_text(v) for v in (1.0, 0.88, 0.873, None)] == ["1.000", "0.880", "0.873", "—"]
    assert readable_date("2025-01-15T10:24:00+00:00") == "2025-01-15 10:24 UTC"
    assert readable_date("2025-01-15T12:24:00+02:00") == "2025-01-15 10:24 UTC"
    assert readable_date("not a date") == "not a date"
