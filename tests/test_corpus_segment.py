"""Sentence segmentation and cleaning: English rules, Chinese punctuation, terminal debris."""
from __future__ import annotations

from emergelab.corpus.segment import clean_text, segment_document, split_sentences, unwrap


def test_english_sentences_split_at_stops_followed_by_a_capital():
    text = ('Mr. Smith went to Washington. He arrived at 5 p.m. on Monday! Did he? "Yes." '
            "The U.S. Army was there. It was J. R. R. Tolkien who wrote it. Values are 3.5 and 4. "
            "Wait... Then e.g. this stays. (Really.) Done")
    assert split_sentences(text) == [
        "Mr. Smith went to Washington.", "He arrived at 5 p.m. on Monday!", "Did he?", '"Yes."',
        "The U.S. Army was there.", "It was J. R. R. Tolkien who wrote it.", "Values are 3.5 and 4.",
        "Wait...", "Then e.g. this stays.", "(Really.)", "Done"]


def test_lower_case_after_a_stop_does_not_split():
    assert split_sentences("It costs 3 dollars vs. 4 dollars. see below.") == ["It costs 3 dollars vs. 4 dollars. see below."]


def test_chinese_sentences_split_after_full_width_marks_and_closing_quotes():
    text = "今天天气很好。我们去公园散步！你去吗？他说：“好！”然后走了。你好!我很好。"
    assert split_sentences(text) == ["今天天气很好。", "我们去公园散步！", "你去吗？", "他说：“好！”", "然后走了。", "你好!", "我很好。"]


def test_brown_style_tokenised_text_with_latex_quotes():
    text = "`` Only a handful was received '' , the jury said . The jury said it did find that many . `` This is it '' ."
    assert split_sentences(text) == ["`` Only a handful was received '' , the jury said .",
                                     "The jury said it did find that many .", "`` This is it '' ."]


def test_unwrap_joins_hard_wrapped_lines_without_spaces_inside_chinese():
    assert unwrap("很难避免遇到与你意见不和，或者难以合作\n的人。") == "很难避免遇到与你意见不和，或者难以合作的人。"
    assert unwrap("The quick brown\n  fox jumps.") == "The quick brown fox jumps."
    assert unwrap("Debian 的\nhello") == "Debian 的 hello"


def test_clean_text_removes_ansi_codes_overstrikes_and_control_characters():
    assert clean_text("\x1b[33m    -- Debian \x1b[32m《行为准则》\x1b[m第一条\x1b[m") == "    -- Debian 《行为准则》第一条"
    assert clean_text("_\bi_\bt is B\bBO\bOL\bLD\x07\r\n") == "it is BOLD\n"


def test_segment_document_handles_paragraphs_and_mixed_scripts():
    doc = "\x1b[33m要有礼貌\x1b[m\n\n在 Debian 项目中，很难\n避免分歧。请保持礼貌。\n\nFirst line\nwraps here. Second one."
    assert segment_document(doc) == ["要有礼貌", "在 Debian 项目中，很难避免分歧。", "请保持礼貌。",
                                     "First line wraps here.", "Second one."]
