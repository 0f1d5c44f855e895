"""config.wrapping.wrap_name: a <wbr> after each separator that a character on the same line follows."""

from __future__ import annotations

import random
import re

from django.utils.html import escape

from config.wrapping import wrap_name

# The rule as a regular expression (what wrap_name did before it was made of plain replaces).
RULE = re.compile(r"([/\-_.:])(?=.)")


def test_breaks_after_separators_only():
    assert wrap_name("owner/Llama-3.1_Q4:x") == "owner/<wbr>Llama-<wbr>3.<wbr>1_<wbr>Q4:<wbr>x"
    assert wrap_name("trailing-") == "trailing-"
    assert wrap_name("a-\nb") == "a-\nb"
    assert wrap_name("<b>&-") == "&lt;b&gt;&amp;-"


def test_same_as_the_rule_for_any_text():
    pick = random.Random(8)
    samples = ["", "-", "--", "a--b", "x:\n-", "/\n\n-", "a-\r\nb", "é-ü_."]
    samples += ["".join(pick.choice("ab/-_.:\n\r<&\"'") for _ in range(pick.randrange(12))) for _ in range(5000)]
    for text in samples:
        assert wrap_name(text) == RULE.sub(r"\1<wbr>", escape(text)), repr(text)
