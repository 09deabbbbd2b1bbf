"""Tokenizers in Hugging Face format: a word-level tokenizer over a symbol world's vocabulary."""
from __future__ import annotations

from pathlib import Path

from emergelab.worlds.base import SPECIAL_TOKENS


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
