"""Pure-logic tests: Dockerfile parser, variable substitution, .dockerignore, context path safety."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from nsbox.image.build import dockerignore, parser
from nsbox.image.build.context import Context, secure_join
from nsbox.image.build.substitute import process_word, process_words
from nsbox.runtime.errors import InvalidArgument


# --- parser ------------------------------------------------------------------

def test_parse_basic_continuations_comments():
    df = parser.parse("# a comment\nFROM busybox AS base\nRUN echo a \\\n  # inner comment\n  && echo b\n\n"
                      "COPY --from=base --chown=1:2 /a /b\nCMD [\"-c\", \"ls\"]\n")
    cmds = [(i.cmd, i.line) for i in df.instructions]
    assert cmds == [("FROM", 2), ("RUN", 3), ("COPY", 7), ("CMD", 8)]
    assert df.instructions[1].rest == "echo a   && echo b"
    assert df.instructions[2].flags == {"from": "base", "chown": "1:2"}
    assert df.instructions[2].rest == "/a /b"
    assert df.instructions[3].json == ["-c", "ls"]


def test_escape_directive():
    df = parser.parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  x\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "dir c:\\   x"


def test_directive_only_at_top():
    df = parser.parse("FROM scratch\n# escape=`\nRUN a `\n")
    assert df.escape == "\\"


def test_shell_form_when_not_json():
    ins = parser.parse("FROM x\nCMD [not json\n").instructions[1]
    assert ins.json is None and ins.rest == "[not json"


@pytest.mark.parametrize("text,msg", [
    ("FROM x\nFOO bar\n", "line 2: unknown instruction: FOO"),
    ("FROM x\nCOPY --bogus=1 a b\n", "unknown flag: --bogus"),
    ("# escape=x\nFROM x\n", "invalid escape token"),
])
def test_parse_errors_are_one_line(text, msg):
    with pytest.raises(InvalidArgument) as e:
        parser.parse(text)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_split_words_keeps_quotes():
    assert parser.split_words('a="b c" d=e\\ f') == ['a="b c"', 'd=e\\ f']


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("FROMRUNCOPYENVARG[]\"'\\`#= -\n\t$:{}abc/.*")), max_size=200))
def test_parser_fuzz_never_crashes(text):
    from nsbox.image.build.executor import split_stages
    try:
        df = parser.parse(text)
        split_stages(df.instructions)
    except InvalidArgument as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_parser_fuzz_any_text(text):
    try:
        parser.parse(text)
    except InvalidArgument as e:
        assert "\n" not in str(e)


# --- substitution ------------------------------------------------------------

ENV = {"A": "alpha", "E": "", "P": "/usr/bin"}


@pytest.mark.parametrize("word,expect", [
    ("$A", "alpha"), ("${A}", "alpha"), ("x${A}y", "xalphay"), ("$UNSET", ""),
    ("${UNSET:-def}", "def"), ("${E:-def}", "def"), ("${E-def}", ""), ("${UNSET-def}", "def"),
    ("${A:+alt}", "alt"), ("${E:+alt}", ""), ("${E+alt}", "alt"), ("${UNSET+alt}", ""),
    ("'$A'", "$A"), ('"$A b"', "alpha b"), ("\\$A", "$A"), ("${UNSET:-$A}", "alpha"),
    ("$", "$"), ("a$-b", "a$-b"), ('"a\\"b"', 'a"b'), ("${P}:/x", "/usr/bin:/x"),
])
def test_process_word(word, expect):
    assert process_word(word, ENV) == expect


def test_process_words_splits_after_expansion_respecting_quotes():
    assert process_words('$A "b c" d', ENV) == ["alpha", "b c", "d"]
    assert process_words("", ENV) == []


@pytest.mark.parametrize("word", ["${A", "${:-x}", "'open", '"open', "${A:x}", "${UNSET:?must be set}"])
def test_substitution_errors(word):
    with pytest.raises(InvalidArgument):
        process_word(word, ENV)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("$AE{}:-+?'\"\\ xb")), max_size=40))
def test_substitution_fuzz(word):
    try:
        out = process_word(word, ENV)
        assert isinstance(out, str)
    except InvalidArgument as e:
        assert "\n" not in str(e)


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\", blacklist_categories=("Cs",)), max_size=30))
def test_substitution_identity_without_specials(word):
    assert process_word(word, ENV) == word


# --- .dockerignore -----------------------------------------------------------

def test_dockerignore_rules():
    m = dockerignore.parse("# comment\n*.log\n!keep.log\nbuild/\n**/tmp\n/abs\ndocs/**/*.md\n!docs/README.md\n")
    assert m.excluded("a.log") and not m.excluded("keep.log")
    assert not m.excluded("sub/a.log")                 # * does not cross /
    assert m.excluded("build") and m.excluded("build/x/y")
    assert m.excluded("tmp") and m.excluded("a/b/tmp") and m.excluded("a/tmp/f")
    assert m.excluded("abs")
    assert m.excluded("docs/x.md") and m.excluded("docs/a/b/x.md") and not m.excluded("docs/README.md")
    assert not m.excluded("src/main.py")


def test_dockerignore_last_match_wins():
    m = dockerignore.parse("!a\na\n")
    assert m.excluded("a")
    m = dockerignore.parse("*\n!src\n")
    assert not m.excluded("src/x") and m.excluded("other")


@given(st.text(max_size=60), st.text(alphabet="ab/.*?[]!\\", max_size=20))
def test_dockerignore_fuzz(pats, path):
    dockerignore.parse(pats).excluded(path or ".")


# --- context safety ------------------------------------------------------------

def test_secure_join_stays_inside(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "out").symlink_to("/etc")
    (root / "up").symlink_to("../../..")
    (root / "d").mkdir()
    assert secure_join(str(root), "../../etc/passwd") == str(root / "etc/passwd")
    assert secure_join(str(root), "out/passwd") == str(root / "etc/passwd")
    assert secure_join(str(root), "up/x") == str(root / "x")
    assert secure_join(str(root), "d/../d/./f") == str(root / "d/f")


def test_context_expand_globs_and_ignore(tmp_path):
    for n in ("a.txt", "b.txt", "c.md", "sub/d.txt"):
        p = tmp_path / n
        p.parent.mkdir(exist_ok=True)
        p.write_text(n)
    ctx = Context(str(tmp_path), dockerignore.parse("b.txt\n"))
    assert [s.rel for s in ctx.expand("*.txt")] == ["a.txt"]
    assert [s.rel for s in ctx.expand("*/*.txt")] == ["sub/d.txt"]
    assert ctx.expand("b.txt") == [] and ctx.expand("nope") == []
    assert [s.rel for s in ctx.expand("../../a.txt")] == ["a.txt"]
    sums = ctx.checksum(ctx.expand("sub"))
    (tmp_path / "sub/d.txt").write_text("changed")
    assert ctx.checksum(ctx.expand("sub")) != sums
