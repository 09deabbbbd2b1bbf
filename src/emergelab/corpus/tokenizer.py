"""Tokenizers in Hugging Face format: word-level over a symbol world; WordPiece and byte-level BPE for text."""
from __future__ import annotations

from pathlib import Path

#: Special tokens every tokenizer of a symbol world starts with, in this order (ids 0..6).
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]


def symbol_tokenizer(symbols: list[str]):
    """A fast tokenizer whose ids are: special tokens (0..6), then the symbols in order."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + list(symbols))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=1 << 20,
    )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


# ---------------------------------------------------------------------------- trained tokenizers

TOKENIZER_KINDS = ("wordpiece", "bpe")
#: one pre-token per CJK ideograph: a Han character is a token, or a learned byte piece — never merged
#: with its neighbours into one rare word, and never [UNK]
_HAN = r"[\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{f900}-\x{faff}\x{20000}-\x{2fa1f}]"  # Oniguruma syntax


def _wrap(core, **extra):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", bos_token="[BOS]", eos_token="[EOS]", model_max_length=1 << 20, **extra,
    )


def _continuation_characters(texts: list[str], lowercase: bool) -> list[str]:
    """Characters that can continue a BERT pre-token: not white space, punctuation, control or CJK."""
    import unicodedata

    chars: set[str] = set()
    for t in texts:
        chars.update(t.lower() if lowercase else t)
    out = []
    for c in chars:
        o = ord(c)
        if c.isspace() or unicodedata.category(c)[0] in "PC" or 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 \
                or 123 <= o <= 126 or 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
            continue
        out.append(c)
    return sorted(out)


def train_wordpiece(texts, vocab_size: int, *, lowercase: bool = False, min_frequency: int = 2, length: int | None = None):
    """A BERT-style WordPiece tokenizer trained on ``texts`` (an iterable of strings).

    BERT normaliser (Han characters split apart, accents kept unless lower-casing), BERT pre-tokeniser
    (whitespace and punctuation), ``##`` continuation pieces, ``[CLS] A [SEP] (B [SEP])`` templates.
    The special tokens are ids 0..6 in SPECIAL_TOKENS order, as in every emergelab tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    texts = list(texts)

    def fresh(model):
        core = Tokenizer(model)
        core.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                     strip_accents=None, lowercase=lowercase)
        core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        core.decoder = decoders.WordPiece(prefix="##")
        return core

    # tokenizers' WordPiece trainer numbers the "##x" pieces in hash-map order, so merges that tie
    # differ from run to run; listing every "##x" up front (sorted) makes training deterministic.
    # They are passed as trainer special tokens only to fix their ids; the final model has 7 specials.
    pieces = ["##" + c for c in _continuation_characters(texts, lowercase)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size,
                                        min_frequency=min_frequency, show_progress=False,
                                        special_tokens=list(SPECIAL_TOKENS) + pieces, continuing_subword_prefix="##")
    trained = fresh(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    trained.train_from_iterator(texts, trainer, length=length)
    vocab = trained.get_vocab(with_added_tokens=True)
    core = fresh(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return _wrap(core)


def train_bpe(texts, vocab_size: int, *, lowercase: bool = False, min_frequency: int = 2, length: int | None = None):
    """A GPT-style byte-level BPE tokenizer trained on ``texts``: no text is ever [UNK].

    Pre-tokenisation isolates each Han character, then applies GPT-2's byte-level split; no special
    tokens are added on encoding (documents are separated by [EOS] when blocks are packed).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    norm = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    core.normalizer = normalizers.Sequence(norm)
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_HAN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer, length=length)
    return _wrap(core)


def train_tokenizer(texts, kind: str, vocab_size: int, *, lowercase: bool = False, min_frequency: int = 2,
                    length: int | None = None):
    """``wordpiece`` (BERT, masked LM) or ``bpe`` (byte-level, GPT, causal LM), trained on ``texts``."""
    if kind == "wordpiece":
        return train_wordpiece(texts, vocab_size, lowercase=lowercase, min_frequency=min_frequency, length=length)
    if kind == "bpe":
        return train_bpe(texts, vocab_size, lowercase=lowercase, min_frequency=min_frequency, length=length)
    raise ValueError(f"unknown tokenizer kind {kind!r}; allowed: {', '.join(TOKENIZER_KINDS)}")
