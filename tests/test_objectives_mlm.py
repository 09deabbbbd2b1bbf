"""Masked LM: BERT's selection rates, special tokens never masked, whole words, purity in (seed, step),
and our loss (head at selected positions only) equal to the Hugging Face models' own loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emergelab.corpus.tokenizer import symbol_tokenizer
from emergelab.objectives import make_objective
from emergelab.objectives.mlm import IGNORE, MaskedLM
from emergelab.objectives.words import word_ids, word_start_table

torch.set_num_threads(1)
TEXT = ["the quick brown fox jumps over the lazy dog", "tokenization of unbelievable words happens surprisingly often",
        "emergence appears abruptly in language models trained for longer", "grokking happens late in training"] * 10


@pytest.fixture(scope="module")
def symbols():
    return symbol_tokenizer([f"s{i}" for i in range(50)])


def wordpiece():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.decoder = decoders.WordPiece()
    t.train_from_iterator(TEXT, trainers.WordPieceTrainer(vocab_size=90, show_progress=False,
                                                          special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def bytelevel_bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=300, show_progress=False, special_tokens=["<pad>", "<mask>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", mask_token="<mask>")


def _batch_with_specials(tok, rng, n=512, t=128):
    """Random normal tokens with [CLS] … [SEP] … [SEP] and trailing padding, like NSP rows."""
    special = set(tok.all_special_ids)
    normal = np.array([i for i in range(len(tok)) if i not in special])
    ids = normal[rng.integers(0, len(normal), size=(n, t))]
    ids[:, 0] = tok.cls_token_id
    ids[:, t // 2] = tok.sep_token_id
    ends = rng.integers(t // 2 + 2, t, size=n)
    for row, e in zip(ids, ends):
        row[e] = tok.sep_token_id
        row[e + 1:] = tok.pad_token_id
    return ids


def test_selection_is_15_percent_and_80_10_10_and_never_special(symbols):
    rng = np.random.default_rng(0)
    ids = _batch_with_specials(symbols, rng)
    obj = MaskedLM(tokenizer=symbols, seed=3)
    b = obj.batch(ids, step=7)
    labels, inputs = b["labels"].numpy(), b["input_ids"].numpy()
    selected = labels != IGNORE
    special = np.isin(ids, symbols.all_special_ids)
    assert not (selected & special).any()  # never a special token or padding
    assert (inputs[special] == ids[special]).all()
    rate = selected.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.01
    assert (labels[selected] == ids[selected]).all()
    masked = inputs[selected] == symbols.mask_token_id
    kept = inputs[selected] == ids[selected]
    randomised = ~masked & ~kept
    # a random draw equal to the original counts as kept: expected keep = 0.1 + 0.1/|normal vocab|
    assert abs(masked.mean() - 0.8) < 0.02 and abs(randomised.mean() - 0.1) < 0.02 and abs(kept.mean() - 0.1) < 0.02
    assert not np.isin(inputs[selected][randomised], symbols.all_special_ids).any()
    assert (inputs[~selected] == ids[~selected]).all()
    assert int(b["n_selected"]) == selected.sum() and int(b["n_rows"]) == len(ids)
    assert (b["attention_mask"].numpy() == (ids != symbols.pad_token_id)).all()


def test_configurable_rates(symbols):
    ids = _batch_with_specials(symbols, np.random.default_rng(1))
    obj = make_objective(["mlm"], tokenizer=symbols, seed=0, probability=0.3, mask=0.5, random=0.5, keep=0.0, whole_word=False)
    b = obj.batch(ids, 0)
    selected = b["labels"].numpy() != IGNORE
    assert abs(selected.sum() / (~np.isin(ids, symbols.all_special_ids)).sum() - 0.3) < 0.01
    assert abs((b["input_ids"].numpy()[selected] == symbols.mask_token_id).mean() - 0.5) < 0.02


def test_masks_are_a_pure_function_of_seed_and_step(symbols):
    ids = _batch_with_specials(symbols, np.random.default_rng(2), n=64)
    a, b = MaskedLM(tokenizer=symbols, seed=5), MaskedLM(tokenizer=symbols, seed=5)
    for k in ("input_ids", "labels"):
        assert torch.equal(a.batch(ids, 11)[k], b.batch(ids, 11)[k])
    assert not torch.equal(a.batch(ids, 11)["labels"], a.batch(ids, 12)["labels"])
    assert not torch.equal(a.batch(ids, 11)["labels"], MaskedLM(tokenizer=symbols, seed=6).batch(ids, 11)["labels"])


@pytest.mark.parametrize("make", [wordpiece, bytelevel_bpe])
def test_word_starts_agree_with_fast_tokenizer_word_ids(make):
    tok = make()
    starts = word_start_table(tok)
    special = np.isin(np.arange(len(tok)), tok.all_special_ids)
    for text in TEXT[:4]:
        enc = tok(text, add_special_tokens=False)
        ours = word_ids(np.array([enc.input_ids]), starts, special)[0]
        assert ours.tolist() == enc.word_ids()


def test_whole_word_masking_masks_all_pieces_or_none():
    tok = wordpiece()
    enc = tok(TEXT * 8, padding="max_length", max_length=24, truncation=True)
    ids = np.array(enc["input_ids"])
    obj = MaskedLM(tokenizer=tok, seed=0, whole_word=True, probability=0.3)
    selected = np.zeros(ids.shape, dtype=bool)
    for step in range(20):
        sel = obj.batch(ids, step)["labels"].numpy() != IGNORE
        n_multi = 0
        for r in range(len(ids)):
            words = enc.word_ids(r)
            for w in set(x for x in words if x is not None):
                pos = [i for i, x in enumerate(words) if x == w]
                assert sel[r, pos].all() or not sel[r, pos].any()
                n_multi += len(pos) > 1 and sel[r, pos].all()
        assert not sel[np.isin(ids, tok.all_special_ids)].any()
        selected |= sel
    assert n_multi > 0 and selected.mean() > 0.3  # multi-piece words do get masked


def _bert(vocab, seed=0):
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForPreTraining(cfg).eval()


def test_mlm_nsp_loss_equals_bert_for_pretraining_loss(symbols):
    ids = _batch_with_specials(symbols, np.random.default_rng(3), n=16, t=64)
    types = (np.arange(64)[None, :] > 32).astype(np.int64) * (ids != symbols.pad_token_id)
    nsp = np.random.default_rng(4).integers(0, 2, size=16)
    obj = MaskedLM(tokenizer=symbols, seed=0, nsp=True)
    b = obj.batch({"input_ids": ids, "token_type_ids": types, "next_sentence_label": nsp}, 0)
    model = _bert(len(symbols))
    with torch.no_grad():
        ours, parts = obj.loss(model, b)
        ref = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                    labels=b["labels"], next_sentence_label=b["next_sentence_label"]).loss
    assert abs(ours.item() - ref.item()) < 1e-5
    assert abs(parts["mlm_loss"] + parts["nsp_loss"] - ref.item()) < 1e-5


def test_mlm_loss_equals_bert_for_masked_lm_loss(symbols):
    from transformers import BertForMaskedLM

    ids = _batch_with_specials(symbols, np.random.default_rng(5), n=16, t=64)
    obj = MaskedLM(tokenizer=symbols, seed=1)
    b = obj.batch(ids, 3)
    model = _bert(len(symbols), seed=1)
    mlm = BertForMaskedLM(model.config).eval()
    mlm.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        ours, _ = obj.loss(model, b)
        ref = mlm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    assert abs(ours.item() - ref.item()) < 1e-5


def test_slices_average_to_the_full_batch_loss(symbols):
    """Micro-batches and process shards: the mean over slices is the whole step's loss."""
    from emergelab.train.accel import take_rows

    ids = _batch_with_specials(symbols, np.random.default_rng(6), n=16, t=64)
    nsp = np.random.default_rng(7).integers(0, 2, size=16)
    obj = MaskedLM(tokenizer=symbols, seed=2, nsp=True)
    b = obj.batch({"input_ids": ids, "next_sentence_label": nsp}, 0)
    model = _bert(len(symbols), seed=2)
    with torch.no_grad():
        full, _ = obj.loss(model, b)
        quarters = [obj.loss(model, take_rows(b, slice(i, i + 4), 16, torch.device("cpu")))[0] for i in range(0, 16, 4)]
    assert abs(torch.stack(quarters).mean().item() - full.item()) < 1e-5


def test_clm_loss_equals_gpt2_loss():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=57, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    obj = make_objective(["clm"], tokenizer=None, seed=0)
    blocks = np.random.default_rng(0).integers(7, 57, size=(8, 32))
    b = obj.batch(blocks, 0)
    with torch.no_grad():
        ours, _ = obj.loss(model, b)
        ref = model(input_ids=b["input_ids"], labels=b["input_ids"]).loss
    assert abs(ours.item() - ref.item()) < 1e-5


def test_fused_causal_lm_loss_equals_gpt2_loss():
    from emergelab.models import build_model, initialise
    from emergelab.objectives.clm_fused import FusedCausalLM
    from emergelab.spec import Rung

    model = initialise(build_model(Rung(name="x", n_layer=2, d_model=32, n_head=4), vocab_size=300, seq_len=32,
                                   causal=True), "normal", 0).eval()
    ids = torch.from_numpy(np.random.default_rng(1).integers(7, 300, size=(8, 32)))
    ours, _ = FusedCausalLM().loss(model, {"input_ids": ids})
    ref = model(input_ids=ids, labels=ids).loss
    assert abs(ours.item() - ref.item()) < 1e-5
    ours.backward()
    g_ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(g_ours[n], p.grad, atol=1e-6, rtol=1e-4), n


def test_fused_causal_lm_over_seen_tokens_is_the_restricted_cross_entropy():
    """``train.loss_vocab: seen``: the loss is the cross-entropy of the logits of the seen ids only, and the
    head rows of never-seen ids (here the 7 specials and ids 200..299) get exactly zero gradient."""
    import torch.nn.functional as F

    from emergelab.models import build_model, initialise
    from emergelab.objectives.clm_fused import FusedCausalLM, seen_ids
    from emergelab.spec import Rung

    model = initialise(build_model(Rung(name="x", n_layer=1, d_model=16, n_head=2), vocab_size=300, seq_len=16,
                                   causal=True), "normal", 0).eval()
    rows = np.random.default_rng(2).integers(7, 200, size=(6, 16))
    seen = seen_ids(rows, 300, chunk=7)  # chunks that split rows: counting is chunk-independent
    assert seen.tolist() == sorted(set(rows.ravel().tolist()))
    ids = torch.from_numpy(rows)
    ours, _ = FusedCausalLM(seen, 300).loss(model, {"input_ids": ids})
    logits = model(input_ids=ids).logits[:, :-1][..., torch.from_numpy(seen)]
    remap = {int(t): i for i, t in enumerate(seen)}
    target = torch.tensor([remap[int(t)] for t in ids[:, 1:].reshape(-1)])
    ref = F.cross_entropy(logits.reshape(-1, len(seen)), target)
    assert abs(ours.item() - ref.item()) < 1e-5
    assert ours.item() < model(input_ids=ids, labels=ids).loss.item()  # fewer competitors, lower loss
    ours.backward()
    grad = model.get_output_embeddings().weight.grad
    unseen = np.setdiff1d(np.arange(300), seen)
    assert grad[torch.from_numpy(unseen)].abs().max().item() == 0.0
    assert grad[torch.from_numpy(seen)].abs().sum(1).min().item() > 0.0


def test_fused_causal_lm_after_a_token_is_the_cross_entropy_of_the_tokens_that_follow_it():
    """``train.loss_after``: the loss is the mean cross-entropy at the positions whose input is that token
    (the answer after '='), and the other positions' targets get no gradient."""
    import torch.nn.functional as F

    from emergelab.models import build_model, initialise
    from emergelab.objectives.clm_fused import FusedCausalLM
    from emergelab.spec import Rung

    model = initialise(build_model(Rung(name="x", n_layer=1, d_model=16, n_head=2), vocab_size=40, seq_len=12,
                                   causal=True), "normal", 0).eval()
    rows = np.random.default_rng(3).integers(7, 40, size=(5, 12))
    rows[rows == 8] = 9
    rows[:, [3, 9]] = 8  # the marker token at two positions per row (as '=' of two problems), and nowhere else
    ids = torch.from_numpy(rows)
    ours, _ = FusedCausalLM(after=8).loss(model, {"input_ids": ids})
    logits = model(input_ids=ids).logits
    ref = F.cross_entropy(logits[:, [3, 9]].reshape(-1, 40), ids[:, [4, 10]].reshape(-1))
    assert abs(ours.item() - ref.item()) < 1e-5
    both, _ = FusedCausalLM(seen=np.arange(7, 40), vocab_size=40, after=8).loss(model, {"input_ids": ids})
    ref_seen = F.cross_entropy(logits[:, [3, 9]][..., 7:].reshape(-1, 33), ids[:, [4, 10]].reshape(-1) - 7)
    assert abs(both.item() - ref_seen.item()) < 1e-5
    none, _ = FusedCausalLM(after=6).loss(model, {"input_ids": ids})  # no position holds token 6: zero loss
    assert none.item() == 0.0
