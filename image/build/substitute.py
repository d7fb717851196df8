"""docker's build-time variable substitution (moby's shell/lex.go ProcessWord/ProcessWords).

$VAR, ${VAR}, ${VAR:-word}, ${VAR-word}, ${VAR:+word}, ${VAR+word}, ${VAR:?msg}, ${VAR?msg};
single quotes are literal, double quotes expand, the escape token makes the next char literal,
and quotes are removed. An unset variable expands to "".
"""
from __future__ import annotations

from nsbox.runtime.errors import InvalidArgument


class _Lexer:
    def __init__(self, word: str, env: dict[str, str], escape: str):
        self.s, self.i, self.env, self.escape = word, 0, env, escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1 if ch else 0
        return ch

    def words(self, stop: str = "", split: bool = False) -> list[str]:
        """Process until `stop` (unquoted) or the end -> words (one word unless `split`)."""
        words: list[str] = []
        cur: list[str] = []
        has = False
        while True:
            ch = self.peek()
            if not ch or (stop and ch == stop):
                break
            if split and ch.isspace():
                self.next()
                if has:
                    words.append("".join(cur))
                cur, has = [], False
                continue
            has = True
            if ch == "'":
                self.next()
                cur.append(self._until_quote("'"))
            elif ch == '"':
                self.next()
                cur.append(self._double())
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                cur.append(nxt if nxt else self.escape)
            elif ch == "$":
                cur.append(self._dollar())
            else:
                cur.append(self.next())
        if has or not split:
            words.append("".join(cur))
        return words

    def _until_quote(self, q: str) -> str:
        out = []
        while True:
            ch = self.next()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
            if ch == q:
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                if nxt in ('"', "$", self.escape):
                    out.append(nxt)
                else:
                    out.append(self.escape + nxt)
            else:
                out.append(self.next())

    def _name(self) -> str:
        out = []
        while (c := self.peek()) and (c.isalnum() or c == "_") and c.isascii():
            out.append(self.next())
        return "".join(out)

    def _dollar(self) -> str:
        self.next()  # $
        ch = self.peek()
        if ch != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # {
        name = self._name()
        if not name:
            raise InvalidArgument(f"missing ':' in substitution or bad variable name in {self.s!r}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch or 'EOF'}) in substitution: {self.s!r}")
        word = self.words(stop="}")[0]
        if self.next() != "}":
            raise InvalidArgument(f"missing '}}' in substitution: {self.s!r}")
        is_set = name in self.env
        value = self.env.get(name, "")
        empty = (not value) if colon else (not is_set)
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if empty:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value


def process_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """One word: expand and remove quotes (ENV/LABEL/ARG values, WORKDIR, USER, FROM...)."""
    return _Lexer(word, env, escape).words()[0]


def process_words(word: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """Expand, then split on unquoted whitespace (EXPOSE, VOLUME, COPY/ADD sources in shell form)."""
    return _Lexer(word, env, escape).words(split=True)
