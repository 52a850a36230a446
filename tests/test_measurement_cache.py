from tladvisor.measures import cache as measurement_cache
from tladvisor.records import BackboneMeasurement, Score, StageShift


def sample_measurement() -> BackboneMeasurement:
    return BackboneMeasurement(
        backbone="net", similarity=Score(0.7, 0.05, 0.7, detail="d"),
        scores={"logme": Score(1.5, 0.1, 0.6, True, "LogME"), "leep": Score(float("nan"))},
        stage_shift=(StageShift("stem", 0.2, 1), StageShift("top", 1.5, 3)), n_measured=40, image_size=96,
        seconds=3.5, warnings=("w",), embedding_2d=((0.1, -0.2, 0), (0.3, 0.4, 1)), n_stages=2)


def test_round_trip_keeps_every_number_and_marks_it_cached(tmp_path):
    path = tmp_path / "m.json"
    original = sample_measurement()
    measurement_cache.write(path, original)
    loaded = measurement_cache.read(path)
    assert loaded.from_cache and not original.from_cache
    assert loaded.similarity == original.similarity
    assert loaded.scores["logme"] == original.scores["logme"]
    assert loaded.scores["leep"].value != loaded.scores["leep"].value  # NaN survives as NaN
    assert loaded.stage_shift == original.stage_shift
    assert loaded.embedding_2d == original.embedding_2d
    assert (loaded.n_measured, loaded.image_size, loaded.n_stages) == (40, 96, 2)


def test_unreadable_entry_is_ignored(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"backbone": "net", "similar')
    assert measurement_cache.read(path) is None
    assert measurement_cache.read(tmp_path / "absent.json") is None


def test_key_changes_with_plugin_versions_and_seed():
    base = measurement_cache.measurement_key("f", [("measures", "1.0")], 0)
    assert base == measurement_cache.measurement_key("f", [("measures", "1.0")], 0)
    assert base != measurement_cache.measurement_key("f", [("measures", "1.1")], 0)
    assert base != measurement_cache.measurement_key("f", [("measures", "1.0"), ("extra", "0.1")], 0)
    assert base != measurement_cache.measurement_key("f", [("measures", "1.0")], 1)
    assert base != measurement_cache.measurement_key("g", [("measures", "1.0")], 0)
