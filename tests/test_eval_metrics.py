"""Evaluation metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emergelab.evaluate import metrics as M
from emergelab.evaluate.requests import Item
from emergelab.evaluate.runner import aggregate, choice_metrics, continuation_metrics, uniform_chance
from emergelab.evaluate.scoring import TokenScores, _scores


def test_exact_match_and_token_accuracy():
    assert M.exact_match(np.array([True, True, False])) == 0.0
    assert M.exact_match(np.array([True, True])) == 1.0
    assert M.token_accuracy(np.array([True, True, False])) == pytest.approx(2 / 3)


def test_target_logprob():
    assert M.target_logprob(np.log([0.5, 0.25])) == pytest.approx(math.log(0.125))


def test_brier_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    # position 0: 0.3² + 0.2² + 0.1² = 0.14; position 1: 0.5² + 0.5² = 0.5; mean 0.32
    assert M.brier(probs, np.array([0, 1])) == pytest.approx(0.32)


def test_brier_from_logits_equals_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4]])
    targets = torch.tensor([2, 3])
    logp, greedy, brier = _scores(logits, targets)
    probs = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(brier, [M.brier(probs[i:i + 1], targets[i:i + 1].numpy()) for i in range(2)], atol=1e-6)
    np.testing.assert_allclose(logp, np.log(probs[[0, 1], [2, 3]]), atol=1e-6)
    assert greedy.tolist() == [False, True]


def test_choice_brier_and_accuracy():
    scores = np.log([0.5, 0.3, 0.2])
    # gold 1: (0.5)² + (1 − 0.3)² + (0.2)² = 0.25 + 0.49 + 0.04
    assert M.choice_brier(scores, 1) == pytest.approx(0.78)
    assert M.mc_accuracy(scores, 0) == 1.0 and M.mc_accuracy(scores, 1) == 0.0
    assert M.mc_accuracy(np.array([1.0, 1.0]), 0) == 1.0  # ties go to the first choice


@pytest.mark.parametrize("a, b, d", [("kitten", "sitting", 3), ([1, 2, 3], [1, 3], 1), ([], [1, 2], 2),
                                     ([4, 5], [4, 5], 0), ([1, 2], [2, 1], 2), ("abc", "", 3)])
def test_edit_distance(a, b, d):
    assert M.edit_distance(list(a), list(b)) == d


def test_bootstrap_stderr():
    vals = np.array([0.0, 1.0] * 50)
    se = M.bootstrap_stderr(vals, 2000, seed=0)
    assert se == pytest.approx(0.05, rel=0.1)  # sqrt(p(1−p)/n) = sqrt(0.25/100)
    assert se == M.bootstrap_stderr(vals, 2000, seed=0)
    assert math.isnan(M.bootstrap_stderr(vals, 0, seed=0))
    assert math.isnan(M.bootstrap_stderr(np.array([1.0]), 10, seed=0))


def test_normalise_answer():
    assert M.normalise_answer("  Paris. ") == "Paris."
    assert M.normalise_answer(" Paris. ", ignore_case=True, ignore_punctuation=True) == "paris"
    assert M.normalise_answer("The answer is 4", regexes_to_ignore=["The answer is "]) == "4"


def test_example_metrics_by_hand():
    s = TokenScores(logp=np.log([0.5, 0.25]), greedy=np.array([True, False]), brier=np.array([0.3, 0.7]))
    m = continuation_metrics(s)
    assert m == pytest.approx({"exact_match": 0.0, "token_accuracy": 0.5, "target_logprob": math.log(0.125),
                               "target_logprob_per_token": math.log(0.125) / 2, "brier": 0.5})
    good = TokenScores(np.log([0.9]), np.array([True]), np.array([0.02]))
    item = Item(doc=0, context=[1], target=[5], choices=[[4], [5, 6]], gold=1, choice_chars=[1, 10])
    c = choice_metrics([good, s], item, norm=True)
    # choice log-likelihoods log 0.9 > log 0.125: the gold (1) loses; normalised by characters too
    assert c["mc_accuracy"] == 0.0 and c["mc_accuracy_norm"] == 0.0
    p = np.array([0.9, 0.125]) / 1.025
    assert c["brier"] == pytest.approx(p[0] ** 2 + (1 - p[1]) ** 2)
    assert c["target_logprob"] == pytest.approx(math.log(0.125))


def test_aggregate_is_mean_with_paired_bootstrap():
    per = [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 0.0}]
    rows = {r["metric"]: r for r in aggregate(per, n_boot=50, seed=3)}
    assert rows["a"]["value"] == pytest.approx(2 / 3) and rows["b"]["value"] == pytest.approx(1 / 3)
    assert rows["a"]["n"] == 3
    # same resamples for both metrics (b = 1 − a): identical standard errors
    assert rows["a"]["stderr"] == pytest.approx(rows["b"]["stderr"])


def test_uniform_chance_levels():
    items = [Item(0, [1], [2, 3]), Item(1, [1], [2, 3])]
    c = uniform_chance(items, "generate", vocab_size=4)
    assert c["exact_match"] == pytest.approx(1 / 16) and c["token_accuracy"] == 0.25
    assert c["brier"] == pytest.approx(0.75) and c["target_logprob"] == pytest.approx(-2 * math.log(4))
    mc = [Item(0, [1], [2], choices=[[2], [3], [4], [5]], gold=0)]
    c = uniform_chance(mc, "multiple_choice", vocab_size=10)
    assert c["mc_accuracy"] == 0.25 and c["brier"] == pytest.approx(0.75)
