"""Bad input never ends in a traceback: Hypothesis writes odd folders and manifests, the CLI analyses them.

Each generated dataset goes through ``tladvisor.cli.main`` in this process with the tiny backbone and
``--trials 0``. Whatever it holds (random bytes named .png, truncated files, every PIL mode, 1-pixel and
very long images, unicode, undecodable and 255-byte names, missing labels, duplicate rows, empty
classes, paths escaping the manifest's folder, broken CSV), the run either completes, listing each
unusable file it was given with a reason, or exits non-zero with one line starting "error:". Nothing
half-written is left in the output folder either way.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tladvisor.cli import main

from helpers import TINY_PLUGIN

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's chatter about the broken files we feed it

FUZZ_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                HealthCheck.data_too_large])
CASES: dict[str, int] = {"folders": 0, "manifests": 0, "completed": 0, "refused": 0}
REASONS: list[str] = []

# --- names -------------------------------------------------------------------------------------------

NAME_CHARACTERS = st.characters(
    codec="utf-8", exclude_characters="/\\\0",
    categories=("Lu", "Ll", "Lo", "Nd", "Zs", "Po", "Ps", "Pe", "Sm", "So", "Mn"))
UNDECODABLE = "bad-\udcff\udcfe"  # bytes b"bad-\xff\xfe": not UTF-8; Python maps them to lone surrogates


def _fits(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "\0" not in name and 0 < len(os.fsencode(name)) <= 255


stems = st.one_of(
    st.text(NAME_CHARACTERS, min_size=1, max_size=24),
    st.sampled_from(["<b>x<\\b>", "a&amp;b", "'; DROP", "NA", "null", "-rf", " lead", "é" * 60, "猫", "🐈"]),
    st.just(UNDECODABLE),
    st.integers(200, 245).map(lambda n: "L" * n),  # with the extension: near the 255-byte limit
).filter(_fits)

# --- files -------------------------------------------------------------------------------------------

MODES = {  # mode -> formats that can store it
    "1": ["png", "bmp", "tiff"], "L": ["png", "jpeg", "bmp", "gif", "tiff"], "LA": ["png"],
    "P": ["png", "gif", "bmp"], "RGB": ["png", "jpeg", "bmp", "tiff", "webp"], "RGBA": ["png", "tiff", "webp"],
    "CMYK": ["jpeg", "tiff"], "I;16": ["png", "tiff"], "I": ["tiff"], "F": ["tiff"],
}
SUFFIX = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "gif": ".gif", "tiff": ".tif", "webp": ".webp"}


@dataclass
class FileSpec:
    kind: str  # good, bytes, truncated, folder, dangling, text
    stem: str
    payload: bytes = b""
    suffix: str = ".png"

    @property
    def bad(self) -> bool:
        """A file with an image extension that no one can use: it must be listed as skipped."""
        return self.kind in ("bytes", "truncated", "dangling")


def encoded(mode: str, fmt: str, width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        image = Image.fromarray(rng.integers(0, 60000, (height, width)).astype(dtype), mode=None)
        if mode == "I;16":
            image = image.convert("I;16") if image.mode != "I;16" else image
    else:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@st.composite
def files(draw) -> FileSpec:
    kind = draw(st.sampled_from(["good", "good", "good", "bytes", "truncated", "folder", "dangling", "text"]))
    stem = draw(stems)
    if kind in ("good", "truncated"):
        mode = draw(st.sampled_from(sorted(MODES)))
        fmt = draw(st.sampled_from(MODES[mode]))
        width, height = draw(st.sampled_from([(1, 1), (1, 300), (300, 1), (7, 5), (33, 20)]))
        payload = encoded(mode, fmt, width, height, draw(st.integers(0, 10)))
        if kind == "truncated":
            payload = payload[: draw(st.integers(0, max(0, len(payload) - 1)))]
            if _decodes(payload):
                kind = "good"  # cut inside trailing chunks the decoder does not need: still an image
        return FileSpec(kind, stem, payload, SUFFIX[fmt])
    if kind == "bytes":
        payload = draw(st.binary(max_size=64))
        return FileSpec("bytes" if not _decodes(payload) else "good", stem, payload,
                        draw(st.sampled_from([".png", ".jpg", ".JPEG", ".gif", ".webp", ".tiff"])))
    if kind == "text":
        return FileSpec(kind, stem, b"not an image", draw(st.sampled_from([".txt", ".csv", ""])))
    return FileSpec(kind, stem, suffix=".png")  # folder or dangling symlink named like an image


def _decodes(payload: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
        return True
    except Exception:
        return False


def write_file(folder: Path, spec: FileSpec, used: set[str]) -> Path | None:
    name = spec.stem[: 255 - len(spec.suffix.encode())] + spec.suffix
    while not _fits(name) or name in used:
        name = "x" + name[-200:]
    used.add(name)
    path = folder / name
    try:
        if spec.kind == "folder":
            path.mkdir()
        elif spec.kind == "dangling":
            path.symlink_to(folder / "nowhere" / "missing.png")
        else:
            path.write_bytes(spec.payload)
    except OSError:  # a name this file system refuses: not the program's input
        used.discard(name)
        return None
    return path


# --- datasets ----------------------------------------------------------------------------------------


@dataclass
class Written:
    source: Path
    bad: list[Path] = field(default_factory=list)


@st.composite
def image_folders(draw) -> callable:
    layout = draw(st.sampled_from(["flat", "flat", "split", "nested"]))
    usable = draw(st.integers(0, 3)) > 0  # mostly: enough good images per class for the run to complete
    classes = draw(st.lists(st.tuples(stems, st.lists(files(), max_size=6)), min_size=2 if usable else 0,
                            max_size=4, unique_by=lambda c: c[0].lower()))
    if usable:
        classes = [(name, [*fs, *(FileSpec("good", f"ok{i}", encoded("RGB", "png", 9, 7, i)) for i in range(3))])
                   for name, fs in classes]
    loose = draw(st.lists(files(), max_size=2))
    root_name = draw(st.one_of(st.just("data"), stems))

    def write(base: Path) -> Written:
        root = base / root_name
        root.mkdir()
        written = Written(root)
        parents = [root] if layout != "split" else [root / "train", root / "val"]
        for parent in parents:
            parent.mkdir(exist_ok=True)
            for class_name, class_files in classes:
                folder = parent / class_name
                try:
                    folder.mkdir()
                except OSError:
                    continue
                if layout == "nested":
                    folder = folder / "sub"
                    folder.mkdir()
                used: set[str] = set()
                hidden = class_name.startswith(".") or class_name == "__MACOSX"  # ignored with its files
                for spec in class_files:
                    path = write_file(folder, spec, used)
                    if path is not None and spec.bad and not path.name.startswith(".") and not hidden:
                        written.bad.append(path)
        used = set()
        for spec in loose:
            write_file(root, spec, used)
        return written

    return write


ROW_PATHS = ["good", "good", "good", "missing", "empty", "escape", "absolute", "duplicate", "folder"]


@st.composite
def manifests(draw) -> callable:
    images = draw(st.lists(files(), min_size=1, max_size=8))
    rows = draw(st.lists(st.tuples(st.sampled_from(ROW_PATHS), st.integers(0, 7),
                                   st.one_of(st.sampled_from(["a", "b", "", "NA", "c\u00e9", " "]), stems),
                                   st.sampled_from([None, "train", "val", "test", "holdout", ""])),
                         max_size=14))
    if draw(st.integers(0, 3)) > 0:  # mostly: two classes of good rows among the odd ones
        images += [FileSpec("good", f"ok{i}", encoded("RGB", "png", 9, 7, i)) for i in range(6)]
        rows = [("good", -1 - i, "ab"[i % 2], None) for i in range(6)] + rows
    kind = draw(st.sampled_from(["csv", "csv", "csv", "tsv", "parquet", "garbage", "no label column"]))
    garbage = draw(st.binary(max_size=80))

    def write(base: Path) -> Written:
        fmt = kind
        root = base / "m"
        (root / "img").mkdir(parents=True)
        used: set[str] = set()
        paths = [write_file(root / "img", spec, used) for spec in images]
        good = [(p, s) for p, s in zip(paths, images) if p is not None]
        (base / "outside.png").write_bytes(encoded("RGB", "png", 8, 8, 0))
        table = []
        for choice, index, label, split in rows:
            if choice in ("good", "duplicate") and good:
                path, _ = good[index % len(good)]
                raw = os.path.relpath(path, root)
                if choice == "duplicate" and table:
                    table.append(table[-1])
                    continue
            elif choice == "missing":
                raw = "img/missing-file.png"
            elif choice == "escape":
                raw = "../outside.png"
            elif choice == "absolute":
                raw = str(base / "outside.png")
            elif choice == "folder":
                raw = "img"
            else:
                raw = ""
            table.append({"path": raw, "label": label, "split": split or ""})
        manifest = root / {"csv": "m.csv", "tsv": "m.tsv", "parquet": "m.parquet",
                           "garbage": "m.csv", "no label column": "m.csv"}[fmt]
        if fmt == "garbage":
            manifest.write_bytes(garbage)
        elif fmt == "parquet":
            import pandas as pd

            try:
                pd.DataFrame(table or {"path": [], "label": []}).to_parquet(manifest)
            except Exception:  # undecodable names cannot go into Parquet's UTF-8 strings
                manifest.unlink(missing_ok=True)
                manifest = manifest.with_suffix(".csv")
                fmt = "csv"
        if fmt in ("garbage", "parquet"):
            pass
        else:
            columns = ["path", "label", "split"] if fmt != "no label column" else ["path", "split"]
            with open(manifest, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
                writer = csv.DictWriter(handle, columns, extrasaction="ignore",
                                        delimiter="\t" if fmt == "tsv" else ",")
                writer.writeheader()
                writer.writerows(table)
        written = Written(manifest)
        # rows of bad files that are listed (and not refused as a whole) must come back as skipped
        listed = {os.path.normpath(root / row["path"]) for row in table if row["path"] and row["label"].strip()}
        written.bad = [p for p, s in good if s.bad and os.path.normpath(p) in listed]
        return written

    return write


# --- the property ------------------------------------------------------------------------------------

_counter = itertools.count()


def run_cli(tmp_path: Path, plugins: Path, written: Written, case: Path, capsys) -> None:
    out = case / "reports"
    capsys.readouterr()
    code = main(["--plugins-dir", str(plugins), "analyze", str(written.source), "--backbone", "tiny_cnn",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--trials", "0",
                 "--max-samples", "50", "--device", "cpu"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or "-tmp-" in p.name] if out.exists() else []
    assert not leftovers, leftovers
    if code == 0:
        CASES["completed"] += 1
        (analysis_path,) = list(out.glob("*/analysis.json"))
        analysis = json.loads(analysis_path.read_text(encoding="utf-8"))
        skipped = {os.path.normpath(item["path"]) for item in analysis["dataset"]["skipped"]}
        missing = [p for p in written.bad if os.path.normpath(p) not in skipped]
        assert not missing, f"bad files not reported as skipped: {missing}"
        assert all(item["reason"] for item in analysis["dataset"]["skipped"])
        assert analysis["dataset"]["n_samples"] >= 2 and analysis["recommendation"] is not None
        assert (analysis_path.parent / "index.html").is_file()
    else:
        CASES["refused"] += 1
        lines = [line for line in captured.err.splitlines() if line.strip() and not line.startswith("[")]  # progress
        REASONS.append("\n".join(lines).strip()[:150])
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, captured.err)
        assert not list(out.rglob("analysis.json")) if out.exists() else True


@given(folder=image_folders())
@FUZZ_SETTINGS
def test_fuzzed_image_folders_complete_or_fail_in_one_line(tmp_path, write_plugin, capsys, folder):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    case = tmp_path / f"case{next(_counter)}"
    case.mkdir()
    CASES["folders"] += 1
    run_cli(tmp_path, plugins, folder(case), case, capsys)


@given(manifest=manifests())
@FUZZ_SETTINGS
def test_fuzzed_manifests_complete_or_fail_in_one_line(tmp_path, write_plugin, capsys, manifest):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    case = tmp_path / f"case{next(_counter)}"
    case.mkdir()
    CASES["manifests"] += 1
    run_cli(tmp_path, plugins, manifest(case), case, capsys)


def test_fuzz_cases_were_counted():
    # runs after the two properties in file order; the counts go into the test log (-s or -rA)
    print(f"\nfuzz cases: {CASES}")
    print("\n".join(sorted(REASONS)))
    assert CASES["folders"] == 0 or CASES["folders"] >= FUZZ_SETTINGS.max_examples // 2
