"""Text datasets: manifests (CSV, JSON Lines) and class folders of .txt files, the modality found from the data,
bad texts skipped with their reason, duplicates and leakage, and the text profile."""

from __future__ import annotations

import json

import pytest

from tladvisor.data.sources import load_source
from tladvisor.data.text_intake import decode_marking, text_digest, undecodable_bytes
from tladvisor.data.text_profile import profile_texts, shorten
from tladvisor.errors import DatasetError

GOOD = [("a great film with a lovely cast", "pos"), ("boring plot and bad acting", "neg"),
        ("the best thing I saw this year", "pos"), ("I walked out after an hour", "neg"),
        ("wonderful music, clever story", "pos"), ("a waste of two hours", "neg")]


def write_csv(path, rows, header=("text", "label")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_csv_with_a_text_column_and_no_paths_is_text(tmp_path):
    dataset = load_source(write_csv(tmp_path / "reviews.csv", GOOD))
    assert dataset.modality == "text" and dataset.source_format == "csv"
    assert dataset.classes == ("neg", "pos")
    assert [s.text for s in dataset.samples] == [t for t, _ in GOOD]
    assert [dataset.classes[s.label] for s in dataset.samples] == [label for _, label in GOOD]
    assert dataset.samples[2].origin == "row 3 (line 4)"


def test_empty_and_undecodable_texts_are_skipped_with_their_reason(tmp_path):
    path = tmp_path / "reviews.csv"
    write_csv(path, GOOD + [("   ", "pos")])
    with open(path, "ab") as handle:
        handle.write(b"caf\xe9 au lait,neg\n")  # Latin-1, not UTF-8
    dataset = load_source(path)
    assert len(dataset.samples) == len(GOOD)
    reasons = {item.path: item.reason for item in dataset.skipped}
    assert reasons[f"{path} row 7 (line 8)"] == "row 7 (line 8): empty text"
    assert reasons[f"{path} row 8 (line 9)"].startswith("row 8 (line 9): not UTF-8 (byte 0xe9 at character 3)")


def test_json_lines_manifests_and_a_split_column(tmp_path):
    path = tmp_path / "texts.jsonl"
    rows = [{"sentence": t, "category": lab, "split": "val" if i % 3 == 0 else "train"} for i, (t, lab) in enumerate(GOOD)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    dataset = load_source(path)
    assert dataset.modality == "text" and dataset.source_format == "jsonl"
    assert [s.split for s in dataset.samples] == [r["split"] for r in rows]
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2 is not JSON"):
        load_source(tmp_path / "broken.jsonl")


def test_named_columns_and_forcing_the_modality(tmp_path):
    path = write_csv(tmp_path / "t.csv", [(t, lab, "x") for t, lab in GOOD], header=("body_text", "y", "other"))
    with pytest.raises(DatasetError, match="no text column"):
        load_source(path, modality="text")
    dataset = load_source(path, text_column="body_text", label_column="y")
    assert dataset.modality == "text" and len(dataset.samples) == len(GOOD)
    with pytest.raises(DatasetError, match="no column 'nope' \\(--text-column\\)"):
        load_source(path, text_column="nope", label_column="y")
    with pytest.raises(DatasetError, match="--text-column applies to a text manifest"):
        load_source(path, text_column="body_text", modality="image")


def test_a_folder_of_txt_files_is_text_and_bad_files_are_skipped(tmp_path):
    for index, (text, label) in enumerate(GOOD):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "data" / "pos" / "empty.txt").write_bytes(b"")
    (tmp_path / "data" / "neg" / "latin.txt").write_bytes(b"tr\xe8s mauvais")
    (tmp_path / "data" / "neg" / "notes.md").write_text("ignored", encoding="utf-8")
    dataset = load_source(tmp_path / "data")
    assert dataset.modality == "text" and dataset.source_format == "textfolder"
    assert sorted(s.text for s in dataset.samples) == sorted(t for t, _ in GOOD)
    reasons = sorted(item.reason for item in dataset.skipped)
    assert reasons[0] == "empty text" and reasons[1].startswith("not UTF-8 (byte 0xe8 at character 2)")
    assert any("without a text extension (.md x1)" in note for note in dataset.notes)


def test_one_class_or_no_usable_text_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match="only one class \\('pos', 3 texts\\)"):
        load_source(write_csv(tmp_path / "one.csv", [r for r in GOOD if r[1] == "pos"]))
    with pytest.raises(DatasetError, match="no usable texts .* 2 texts skipped \\(empty text x2\\)"):
        load_source(write_csv(tmp_path / "empty.csv", [("", "a"), (" ", "b")]))


def test_duplicates_ignore_case_spacing_and_punctuation_and_never_straddle_the_split(tmp_path):
    assert text_digest("Great film!") == text_digest("  great   FILM ") != text_digest("great films")
    rows = [(f"text number {i} about things", "a" if i % 2 else "b") for i in range(40)]
    rows += [("Great film!", "a"), ("great film", "a"), ("GREAT FILM...", "a")]
    dataset = load_source(write_csv(tmp_path / "t.csv", rows))
    profile = profile_texts(dataset, val_fraction=0.3, seed=0)
    assert len(profile.duplicates) == 1 and len(profile.duplicates[0]) == 3
    assert profile.leakage == ()  # the made split keeps the group on one side
    assert any("2 duplicate texts (1 text stored more than once)" in w for w in profile.warnings)


def test_duplicates_across_a_given_split_are_reported_as_leakage(tmp_path):
    rows = [(t, lab, "train") for t, lab in GOOD] + [("A great film, with a lovely cast.", "pos", "val"),
                                                      ("something else entirely", "neg", "val")]
    dataset = load_source(write_csv(tmp_path / "t.csv", rows, header=("text", "label", "split")))
    profile = profile_texts(dataset)
    assert len(profile.leakage) == 1
    assert any(w.startswith("leakage: 1 text (2 identical texts) in both train and val") for w in profile.warnings)


def test_the_profile_describes_lengths_and_shows_examples(tmp_path):
    rows = [(" ".join(["word"] * (i + 1)), "a" if i % 2 else "b") for i in range(15)]  # 2 of 15 under 3 words
    profile = profile_texts(load_source(write_csv(tmp_path / "t.csv", rows)))
    assert profile.modality == "text"
    assert profile.text["lengths"]["words"]["min"] == 1 and profile.text["lengths"]["words"]["max"] == 15
    assert set(profile.text["examples"]) == {"a", "b"} and all(len(v) == 3 for v in profile.text["examples"].values())
    assert any("texts have fewer than 3 words" in w for w in profile.warnings)
    assert shorten("one two three four", limit=12) == "one two…"


def test_undecodable_bytes_are_found_where_they_are():
    assert undecodable_bytes(decode_marking(b"ok")) is None
    assert undecodable_bytes(decode_marking("é".encode() + b"\xff")) == "byte 0xff at character 1"
    assert decode_marking(b"\xef\xbb\xbfhello") == "hello"  # a byte-order mark is not text


def test_the_bundled_text_example_is_real_docstrings_in_four_areas(tmp_path):
    from tladvisor.data.examples import write_example

    first = write_example("stdlib-docs", tmp_path / "a", seed=0)
    dataset = load_source(first)
    assert dataset.modality == "text" and dataset.classes == ("concurrency", "files", "networking", "text")
    counts = dataset.class_counts()
    assert all(30 <= n <= 40 for n in counts.values()), counts
    assert all(len(s.text.split()) >= 6 for s in dataset.samples)
    assert len({s.digest for s in dataset.samples}) == len(dataset.samples)  # no text under two labels
    import os
    os_texts = [s.text for s in dataset.samples if s.path.name.startswith(("os.", "shutil.", "pathlib."))]
    assert all(dataset.classes[s.label] == "files" for s in dataset.samples if s.text in os_texts)
    again = load_source(write_example("stdlib-docs", tmp_path / "b", seed=0))
    assert [s.text for s in again.samples] == [s.text for s in dataset.samples]  # deterministic for a seed
    assert os.path.isfile(first / ".tladvisor-example")


def test_a_label_with_one_text_is_kept_for_training_and_reported(tmp_path):
    dataset = load_source(write_csv(tmp_path / "t.csv", GOOD + [("the only text of its class here", "rare")]))
    profile = profile_texts(dataset)
    assert dataset.class_counts()["rare"] == 1
    assert any("1 class has a single distinct text, kept for training and not validated: 'rare' (1)" in w
               for w in profile.warnings)


def test_punctuation_only_texts_are_not_all_one_duplicate():
    assert text_digest(":)") != text_digest("!!!") != text_digest("😡")
    assert text_digest(":)") == text_digest(" :) ")


def test_tsv_texts_may_start_with_a_quote(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('text\tlabel\n"a quote opens here\tneg\nthird one\tpos\nfourth " closes\tneg\nplain\tpos\n',
                    encoding="utf-8")
    dataset = load_source(path)
    assert [s.text for s in dataset.samples] == ['"a quote opens here', "third one", 'fourth " closes', "plain"]


def test_an_explicit_text_column_means_text_even_beside_a_path_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", [(t, lab, f"{i}.txt") for i, (t, lab) in enumerate(GOOD)],
                     header=("review", "label", "file"))
    assert load_source(path, text_column="review").modality == "text"
    both = write_csv(tmp_path / "both.csv", [(t, lab, f"{i}.png") for i, (t, lab) in enumerate(GOOD)],
                     header=("text", "label", "file"))
    with pytest.raises(DatasetError, match="it also has a text column \\('text'\\): for texts, pass --modality text"):
        load_source(both)


def test_a_label_with_bytes_that_are_not_utf8_is_skipped(tmp_path):
    path = write_csv(tmp_path / "t.csv", GOOD)
    with open(path, "ab") as handle:
        handle.write(b"a fine text here,caf\xe9\n")
    dataset = load_source(path)
    assert len(dataset.samples) == len(GOOD)
    assert dataset.skipped[0].reason == "row 7 (line 8): label not UTF-8 (byte 0xe9 at character 3)"


def test_a_source_sample_for_images_is_images_only(tmp_path):
    from PIL import Image

    from tladvisor.features.source_sample import read_source_texts, source_sample_paths

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "README.txt").write_text("not an image", encoding="utf-8")
    assert source_sample_paths(tmp_path) == [tmp_path / "a.png"]
    assert source_sample_paths(tmp_path, "text") == [tmp_path / "README.txt"]
    assert read_source_texts(tmp_path) == ["not an image"]  # a folder: each .txt file is one text
    lines = tmp_path / "lines.txt"
    lines.write_text("one text\n\nanother text\n", encoding="utf-8")
    assert read_source_texts(lines) == ["one text", "another text"]


def test_rows_are_named_by_the_line_they_start_on_when_a_text_spans_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"a text\nover two lines",a\n,b\nplain text,b\nmore,a\n', encoding="utf-8")
    dataset = load_source(path)
    assert dataset.samples[0].text == "a text\nover two lines"
    assert dataset.skipped[0].reason == "row 2 (line 4): empty text"
    assert dataset.samples[1].origin == "row 3 (line 5)"
