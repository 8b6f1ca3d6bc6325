"""Plate-format library: TOML region files and the pattern language (see docs/FORMATS.md).

Formats are data, not code, so a user can add a country or a fleet's private series by dropping a
TOML file in a folder (``PLATEREAD_FORMATS`` or ``formats_dir=``) without touching the package.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Iterable, Sequence

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
BUILTIN_DIR = Path(__file__).resolve().parent / "data"
ENV_VAR = "PLATEREAD_FORMATS"
#: A layout with variable parts is expanded into fixed-length position lists; this caps the
#: blow-up so a careless ``A{1,9}A{1,9}...`` fails loudly at load time instead of slowing decoding.
MAX_EXPANSIONS = 4096

_CLASSES = {"L": LETTERS, "N": DIGITS, "A": ALNUM}


class FormatError(ValueError):
    """A region file or pattern that cannot be used, with the place it came from."""


@dataclass(frozen=True)
class Token:
    """One pattern position: the characters allowed there, repeated ``lo``..``hi`` times."""

    chars: frozenset[str]
    lo: int = 1
    hi: int = 1


def _parse_class(body: str, where: str) -> frozenset[str]:
    neg = body.startswith("^")
    if neg:
        body = body[1:]
    out: set[str] = set()
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.add(body[i + 1])
            i += 2
        elif i + 2 < len(body) and body[i + 1] == "-":
            a, b = c, body[i + 2]
            if ord(b) < ord(a):
                raise FormatError(f"{where}: bad range {a}-{b}")
            out.update(chr(o) for o in range(ord(a), ord(b) + 1))
            i += 3
        else:
            out.add(c)
            i += 1
    if neg:  # relative to A-Z0-9: "[^IOQ]" = any letter or digit but I, O, Q
        out = set(ALNUM) - out
    if not out:
        raise FormatError(f"{where}: empty character class [{body}]")
    return frozenset(out)


def parse_pattern(pattern: str, where: str = "pattern") -> tuple[Token, ...]:
    """Parses the pattern language into tokens.

    ``L`` letter, ``N`` digit, ``A`` letter or digit, ``[A-HJ-NP-Z]`` class (``[^IO]`` = A–Z0–9
    except), ``"X"``/``'XY'``/``\\X`` literals, then optionally ``{m}``, ``{m,n}`` or ``?``.
    Spaces and ``-`` outside classes are visual separators and match nothing, because plate
    texts are normalised to A–Z0–9. Any other bare character is an error (a bare ``C`` would
    silently mean nothing)."""
    toks: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in " -_\t":
            i += 1
            continue
        if c in _CLASSES:
            atoms = [frozenset(_CLASSES[c])]
            i += 1
        elif c.isdigit():  # bare digits are unambiguous literals ("1LLLNNN" style)
            atoms = [frozenset(c)]
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                raise FormatError(f"{where}: unclosed '[' in {pattern!r}")
            atoms = [_parse_class(pattern[i + 1:j], where)]
            i = j + 1
        elif c in "\"'":
            j = pattern.find(c, i + 1)
            if j <= i + 1:
                raise FormatError(f"{where}: unclosed or empty quote in {pattern!r}")
            atoms = [frozenset(ch) for ch in pattern[i + 1:j]]
            i = j + 1
        elif c == "\\" and i + 1 < n:
            atoms = [frozenset(pattern[i + 1])]
            i += 2
        else:
            raise FormatError(f"{where}: unexpected {c!r} at {i} in {pattern!r} "
                              "(quote literal letters: \"C\" or \\C)")
        lo = hi = 1
        if i < n and pattern[i] == "?":
            lo, hi, i = 0, 1, i + 1
        elif i < n and pattern[i] == "{":
            j = pattern.find("}", i)
            m = re.fullmatch(r"\s*(\d+)\s*(?:,\s*(\d+)\s*)?", pattern[i + 1:j]) if j > 0 else None
            if not m:
                raise FormatError(f"{where}: bad repetition in {pattern!r}")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            if hi < lo:
                raise FormatError(f"{where}: {{{lo},{hi}}} has max < min in {pattern!r}")
            i = j + 1
        # a repetition applies to the last atom only: "AB"{2} is A then B twice
        toks += [Token(a) for a in atoms[:-1]] + [Token(atoms[-1], lo, hi)]
    if not toks:
        raise FormatError(f"{where}: empty pattern")
    return tuple(toks)


@dataclass(frozen=True)
class Layout:
    """One plate layout of a region. ``weight`` is its relative prior within the region."""

    region: str
    name: str
    pattern: str
    tokens: tuple[Token, ...]
    weight: float = 1.0
    min_len: int = 0
    max_len: int = 99
    examples_valid: tuple[str, ...] = ()
    examples_invalid: tuple[str, ...] = ()
    notes: str = ""

    def expansions(self) -> list[tuple[frozenset[str], ...]]:
        """Fixed-length position lists: what the decoder's automaton is built from."""
        counts = [range(t.lo, t.hi + 1) for t in self.tokens]
        out: list[tuple[frozenset[str], ...]] = []
        for reps in product(*counts):
            length = sum(reps)
            if 0 < length and self.min_len <= length <= self.max_len:
                out.append(tuple(t.chars for t, r in zip(self.tokens, reps) for _ in range(r)))
        return out

    @property
    def size(self) -> float:
        """Number of plates the layout can write (counting an ambiguous split more than once):
        a text's likelihood under the layout is 1/size, so narrow layouts explain a fit better."""
        total = 0.0
        for exp in self.expansions():
            p = 1.0
            for s in exp:
                p *= len(s)
            total += p
        return max(total, 1.0)

    @property
    def regex(self) -> re.Pattern[str]:
        return _regex(self.tokens, self.min_len, self.max_len)

    def matches(self, text: str) -> bool:
        return self.min_len <= len(text) <= self.max_len and bool(self.regex.fullmatch(text))


@lru_cache(maxsize=None)
def _regex(tokens: tuple[Token, ...], lo: int, hi: int) -> re.Pattern[str]:
    parts = []
    for t in tokens:
        cls = "[" + "".join(re.escape(c) for c in sorted(t.chars)) + "]"
        parts.append(f"{cls}{{{t.lo},{t.hi}}}")
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    layouts: tuple[Layout, ...]
    aliases: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    prior: float = 1.0
    examples_invalid: tuple[str, ...] = ()
    notes: str = ""
    source: str = field(default="", compare=False)

    def matches(self, text: str) -> list[Layout]:
        return [lay for lay in self.layouts if lay.matches(text)]


def _strs(v: object, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str) or not all(isinstance(x, str) for x in v):  # type: ignore[union-attr]
        raise FormatError(f"{where}: expected a list of strings")
    return tuple(v)  # type: ignore[arg-type]


def parse_region(data: dict, source: str = "<dict>") -> tuple[Region, bool]:
    """A Region from a parsed TOML table, and whether it extends (rather than replaces) a
    region of the same code."""
    try:
        code = str(data["code"]).lower()
        layouts_raw = data["layouts"]
    except KeyError as exc:
        raise FormatError(f"{source}: missing key {exc}") from None
    layouts = []
    for i, lay in enumerate(layouts_raw):
        where = f"{source} layout {lay.get('name', i)!r}"
        if "pattern" not in lay:
            raise FormatError(f"{where}: missing 'pattern'")
        weight = float(lay.get("weight", 1.0))
        if weight <= 0:
            raise FormatError(f"{where}: weight must be > 0")
        layouts.append(Layout(
            region=code, name=str(lay.get("name", f"layout{i}")), pattern=lay["pattern"],
            tokens=parse_pattern(lay["pattern"], where), weight=weight,
            min_len=int(lay.get("min_len", 0)), max_len=int(lay.get("max_len", 99)),
            examples_valid=_strs(lay.get("examples_valid"), where),
            examples_invalid=_strs(lay.get("examples_invalid"), where),
            notes=str(lay.get("notes", ""))))
        if len(layouts[-1].expansions()) > MAX_EXPANSIONS:
            raise FormatError(f"{where}: expands to more than {MAX_EXPANSIONS} fixed layouts")
    region = Region(
        code=code, name=str(data.get("name", code.upper())), layouts=tuple(layouts),
        aliases=tuple(a.lower() for a in _strs(data.get("aliases"), source)),
        groups=tuple(g.lower() for g in _strs(data.get("groups"), source)),
        prior=float(data.get("prior", 1.0)),
        examples_invalid=_strs(data.get("examples_invalid"), source),
        notes=str(data.get("notes", "")), source=source)
    return region, bool(data.get("extend", False))


def load_file(path: str | Path) -> tuple[Region, bool]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{path}: {exc}") from None
    return parse_region(data, str(path))


def _dirs(formats_dir: str | Path | Sequence[str | Path] | None) -> list[Path]:
    extra: list[Path] = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if isinstance(formats_dir, (str, Path)):
        extra.append(Path(formats_dir))
    elif formats_dir:
        extra += [Path(p) for p in formats_dir]
    for d in extra:
        if not d.is_dir():
            raise FormatError(f"formats folder not found: {d}")
    return [BUILTIN_DIR] + extra


def load_regions(formats_dir: str | Path | Sequence[str | Path] | None = None
                 ) -> dict[str, Region]:
    """Built-in regions, then the folders of ``PLATEREAD_FORMATS`` (os.pathsep-separated), then
    ``formats_dir``. A later file with a known code replaces that region, or with
    ``extend = true`` appends its layouts to it."""
    return dict(_load(tuple(str(d) for d in _dirs(formats_dir))))


@lru_cache(maxsize=8)
def _load(dirs: tuple[str, ...]) -> tuple[tuple[str, Region], ...]:
    regions: dict[str, Region] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*.toml")):
            region, extend = load_file(path)
            old = regions.get(region.code)
            if extend and old is not None:
                region = Region(old.code, old.name, old.layouts + region.layouts,
                                tuple(dict.fromkeys(old.aliases + region.aliases)),
                                tuple(dict.fromkeys(old.groups + region.groups)), old.prior,
                                old.examples_invalid, old.notes, old.source)
            regions[region.code] = region
    return tuple(regions.items())


def resolve_regions(spec: str | Iterable[str] | None, regions: dict[str, Region]) -> list[str]:
    """Region codes for a user spec: "auto"/"all"/None = every region, else codes, aliases
    ("uk") or groups ("eu"), comma-separated or a list; order kept, duplicates dropped."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("auto", "all", "")):
        return list(regions)
    names = [s for s in (spec.split(",") if isinstance(spec, str) else spec)]
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if name in ("auto", "all"):
            hits = list(regions)
        elif name in regions:
            hits = [name]
        else:
            hits = [c for c, r in regions.items() if name in r.aliases]
            hits = hits or [c for c, r in regions.items() if name in r.groups]
        if not hits:
            groups = sorted({g for r in regions.values() for g in r.groups})
            raise ValueError(f"unknown region {raw!r}; known regions: {', '.join(sorted(regions))}"
                             f"; groups: {', '.join(groups)}; or 'auto'")
        out += [h for h in hits if h not in out]
    return out
