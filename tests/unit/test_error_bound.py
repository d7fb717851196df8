"""Every error is one line of bounded length, whatever it quotes (a tar member's name, a path)."""
from hypothesis import given, strategies as st

from nsbox.runtime.errors import MAX_MESSAGE, bounded


@given(st.text(max_size=5000))
def test_bounded_is_one_short_line(msg):
    out = bounded(msg)
    assert len(out) <= MAX_MESSAGE and "\n" not in out and "\r" not in out


@given(st.text(st.characters(whitelist_categories=("L", "N", "P"), whitelist_characters=" "), max_size=MAX_MESSAGE))
def test_short_printable_messages_are_unchanged(msg):
    assert bounded(msg) == msg


def test_long_quoted_value_keeps_its_ends_and_the_rest_of_the_message():
    out = bounded("refusing member '" + "a" * (4 << 20) + "b': name too long")
    assert out.startswith("refusing member 'aaaa") and out.endswith("ab': name too long")
    assert "..." in out and len(out) < 100
