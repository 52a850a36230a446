import json

from tladvisor.records import AnalysisOptions, AnalysisRun
from tladvisor.runtime.redact import redact_passwords
from tladvisor.report.analysis_json import build_analysis, dumps_analysis


def test_passwords_in_urls_and_command_lines_are_replaced():
    assert redact_passwords("postgresql://alice:s3cr:et@db.example:5432/tl") == "postgresql://alice:***@db.example:5432/tl"
    assert redact_passwords("postgresql+psycopg://bob:pw@h/db") == "postgresql+psycopg://bob:***@h/db"
    command = "tladvisor analyze d --storage postgresql://u:hunter2@h/db --study s"
    assert "hunter2" not in redact_passwords(command)
    assert redact_passwords(command).endswith("postgresql://u:***@h/db --study s")
    for unchanged in ("sqlite:////abs/study.db", "postgresql://u@h/db", "journal.log", "http://host:8080/x"):
        assert redact_passwords(unchanged) == unchanged


def test_analysis_json_never_carries_the_storage_password(tmp_path):
    url = "postgresql://tl:topsecret@127.0.0.1:5432/studies"
    run = AnalysisRun(run_id="r", out_dir=tmp_path, options=AnalysisOptions(source=tmp_path, storage=url),
                      environment={"command": f"tladvisor analyze x --storage {url}"})
    text = dumps_analysis(build_analysis(run))
    assert "topsecret" not in text
    analysis = json.loads(text)
    assert analysis["options"]["storage"] == "postgresql://tl:***@127.0.0.1:5432/studies"
    assert "--storage postgresql://tl:***@" in analysis["environment"]["command"]
