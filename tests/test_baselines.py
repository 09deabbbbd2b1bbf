"""Baselines beside probes and fine-tuning: word lookup, majority, frozen features and TF-IDF give hand-computed accuracies."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emergelab.corpus.labelled import LabelledData
from emergelab.finetune.baselines import baseline_rows, majority_predict, mean_pooled, run_baselines
from emergelab.finetune.encode import encode
from emergelab.measurements import make_frame
from emergelab.probe.baselines import probe_baseline_rows, probe_baselines, word_lookup_predict

torch.set_num_threads(1)


def test_word_lookup_is_the_most_frequent_training_label_per_type_else_the_majority():
    # training: "the" DET x3; "run" VERB x2, NOUN x1; "dog" NOUN x1 -> majority DET (3) over NOUN (2), VERB (2)
    train_types = np.array(["the", "the", "the", "run", "run", "run", "dog"])
    train_y = np.array(["DET", "DET", "DET", "VERB", "VERB", "NOUN", "NOUN"])
    test_types = np.array(["run", "dog", "cat", "the"])
    assert list(word_lookup_predict(train_types, train_y, test_types)) == ["VERB", "NOUN", "DET", "DET"]
    # a tie within a type goes to the smallest label: "x" is A once and B once
    assert list(word_lookup_predict(np.array(["x", "x", "y"]), np.array([1, 0, 1]), np.array(["x"]))) == [0]


def test_probe_baselines_score_the_probes_test_rows():
    words = np.array(["the", "dog", "runs", "the", "cat", "runs", "a", "dog", "sleeps"])
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    train, test = np.arange(6), np.arange(6, 9)  # test: "a" (unseen), "dog" (seen NOUN), "sleeps" (unseen)
    # majority of train is the smallest of the tied labels 0/1/2 -> 0; test [0, 1, 2] -> 1/3
    # lookup: "a" -> majority 0 (right), "dog" -> 1 (right), "sleeps" -> 0 (wrong) -> 2/3
    res = probe_baselines(y, train, test, token_types=words)
    assert res["majority_baseline"] == pytest.approx(1 / 3) and res["word_lookup_baseline"] == pytest.approx(2 / 3)
    rows = probe_baseline_rows(res, task="pos", rung="r", step=4)
    assert [(r["source"], r["metric"], r["layer"], r["n"]) for r in rows] == [
        ("baseline", "majority_baseline", -1, 3), ("baseline", "word_lookup_baseline", -1, 3)]
    assert rows[1]["stderr"] == pytest.approx(np.sqrt(2 / 3 * 1 / 3 / 3))
    assert "word_lookup_baseline" not in probe_baselines(y, train, test, token_types=None)
    make_frame(rows)  # the rows fit the measurement schema


@pytest.fixture(scope="module")
def tiny():
    """A random tiny BERT body and a word-level tokenizer over a, b, c."""
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=16))
    return model.eval(), tok


def test_mean_pooled_is_the_mean_of_the_real_tokens_last_hidden_state(tiny):
    model, tok = tiny
    data = LabelledData.from_texts(["a", "a b c b", "c c"], ["x", "y", "x"], source="t.csv")
    enc = encode(tok, data, max_length=16)
    got = mean_pooled(model, enc, pad_token_id=tok.pad_token_id, batch_size=2)
    for i, ids in enumerate(enc.input_ids):  # one at a time: no padding at all
        with torch.no_grad():
            want = model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_frozen_and_tfidf_baselines_give_their_hand_computed_accuracy(tiny):
    model, tok = tiny
    # training: texts of a's are class 0, texts of b's class 1: both the frozen features and the n-grams separate them
    train = LabelledData.from_texts([" ".join(w * n) for w in "ab" for n in range(1, 7) for _ in range(2)],
                                    ["0"] * 12 + ["1"] * 12, source="t.csv")
    # evaluation: the same kinds of text, one of them labelled against its kind -> 3 of 4 right
    ev = LabelledData.from_texts(["a a", "b b", "a a a", "b b b"], ["0", "1", "1", "1"], source="t.csv")
    ev = ev.with_label_names(train.label_names, reference="t.csv")
    tr_enc, ev_enc = encode(tok, train, max_length=16), encode(tok, ev, max_length=16)
    cache: dict = {}
    scores = run_baselines(model, tr_enc, ev_enc, train_texts=train.texts, eval_texts=ev.texts,
                           which=["majority", "frozen-logreg", "tfidf-logreg"], pad_token_id=tok.pad_token_id,
                           cache=cache, base_key="b")
    # majority: a tie between 0 and 1 (12 each) goes to 0 -> right on 1 of 4
    assert scores["majority"]["accuracy"] == 0.25
    for name in ("frozen-logreg", "tfidf-logreg"):
        assert scores[name]["accuracy"] == 0.75, name
        # class 0: TP 1, FP 1, FN 0 -> F1 2/3; class 1: TP 2, FP 0, FN 1 -> F1 4/5
        assert scores[name]["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2), name
    assert cache[("frozen-eval", "b")].shape == (4, 16) and cache[("tfidf-logreg", 24, 0)] == scores["tfidf-logreg"]
    rows = baseline_rows(scores, data_name="toy", common={"rung": "r", "k_shot": 24, "seed": 0})
    assert {r["task"] for r in rows} == {"finetune/toy/majority", "finetune/toy/frozen-logreg", "finetune/toy/tfidf-logreg"}
    assert {r["source"] for r in rows} == {"baseline"} and len(rows) == 6
    assert list(majority_predict(np.array([2, 1, 1, 2, 2]), 3)) == [2, 2, 2]
