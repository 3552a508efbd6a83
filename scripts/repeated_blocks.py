"""List the blocks of six or more lines that stand twice in the Python sources: the same lines, or the
same shape with other names, strings and numbers.

Each file is read with `tokenize`; blank lines, comments, docstrings and import lines are passed over;
names become `N` (but argparse's `add_argument` and kin), strings `S` and numbers `0`, while keywords
and punctuation stay, so a copy with renamed variables hashes the same. A window of `min_lines` such
lines that stands in two places is a repeat; overlapping windows of one pair merge into one block.

Left out as boilerplate: runs of argparse `add_argument(...)` calls, windows of lines too thin to mean
anything (lone names, `return N`, decorators), and runs of class headers and constants (declarations,
such as one exception class per exit code). A script held in a string (a child's body) is read as code.

Testing/test_repeated_code.py runs this over the sources; run it by hand to plan a clean-up:

    python scripts/repeated_blocks.py [folder ...]   (default: IWUOSegmentation Testing benchmarks scripts)
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import sys
import token
import tokenize
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDERS = ("IWUOSegmentation", "Testing", "benchmarks", "scripts")
MIN_LINES = 6
#: Names kept as they are, so that argparse boilerplate can be told apart.
KEPT_NAMES = {"add_argument", "add_parser", "add_argument_group", "add_mutually_exclusive_group"}
#: A normalised line shorter than this says too little on its own (`N = N`, `return N`, `@N`).
THIN = 12


def normalised_lines(source: str) -> list[tuple[int, str]]:
    """(line number, shape) for each line of code that counts, in order."""
    shapes: dict[int, list[str]] = defaultdict(list)
    skip: set[int] = set()
    embedded: dict[int, list[tuple[int, str]]] = {}
    previous = token.NEWLINE
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    for tok in tokens:
        kind, text, (row, _), (end_row, _), line = tok
        if kind in (token.NL, token.NEWLINE, token.INDENT, token.DEDENT, tokenize.COMMENT, token.ENDMARKER):
            if kind in (token.NEWLINE, token.INDENT, token.DEDENT):
                previous = token.NEWLINE
            continue
        statement_start = previous == token.NEWLINE
        previous = kind
        if statement_start and kind == token.STRING:  # a docstring or a bare string: prose, not code
            skip.update(range(row, end_row + 1))
            continue
        if statement_start and text in ("import", "from"):
            skip.update(range(row, _statement_end(tokens, tok) + 1))
            continue
        if kind == token.STRING and end_row - row + 1 >= MIN_LINES:  # a script held in a string counts as code
            embedded[row] = _embedded_code(text)
        if kind == token.NAME:
            shapes[row].append(text if keyword.iskeyword(text) or text in KEPT_NAMES else "N")
        elif kind == token.STRING or getattr(token, "FSTRING_START", None) == kind:
            shapes[row].append("S")
        elif kind in (getattr(token, "FSTRING_MIDDLE", -1), getattr(token, "FSTRING_END", -1)):
            continue
        elif kind == token.NUMBER:
            shapes[row].append("0")
        else:
            shapes[row].append(text)
    lines = []
    for row in sorted(shapes):
        shape = " ".join(shapes[row])
        if row not in skip and not all(part in "()[]{},:" for part in shapes[row]):
            lines.append((row, shape))
        lines += [(row + inner - 1, inner_shape) for inner, inner_shape in embedded.get(row, [])]
    return lines


def _embedded_code(literal: str) -> list[tuple[int, str]]:
    """The shaped lines of a string literal that holds Python code (a child process' script), else none."""
    try:
        text = ast.literal_eval(literal)
        ast.parse(text)
    except (ValueError, SyntaxError, TypeError):
        return []
    return normalised_lines(text) if isinstance(text, str) else []


def _statement_end(tokens, start) -> int:
    index = tokens.index(start)
    for tok in tokens[index:]:
        if tok.type == token.NEWLINE:
            return tok.start[0]
    return start.start[0]


#: A class header or a constant (`N = 0`, `N = S`): a run of them declares things (an exception per exit
#: code), it repeats no logic.
_DECLARATION = re.compile(r"^(class N( \( N( , N)* \))? :|N = [S0])$")


def _boilerplate(window: list[str]) -> bool:
    arguments = sum(any(f". {name} (" in shape for name in KEPT_NAMES) for shape in window)
    return (arguments * 2 >= len(window) or sum(len(shape) < THIN for shape in window) * 2 > len(window)
            or all(_DECLARATION.match(shape) for shape in window))


def repeated_blocks(files: list[Path], min_lines: int = MIN_LINES, root: Path = ROOT) -> list[str]:
    """`a.py:10-17 ~ b.py:40-47` for each pair of places sharing `min_lines` or more normalised lines."""
    places: dict[tuple[str, ...], list[tuple[str, int, int, int]]] = defaultdict(list)
    for path in files:
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        lines = normalised_lines(path.read_text(encoding="utf-8", errors="replace"))
        for i in range(len(lines) - min_lines + 1):
            window = lines[i:i + min_lines]
            shapes = tuple(shape for _, shape in window)
            if not _boilerplate(list(shapes)):
                places[shapes].append((name, i, window[0][0], window[-1][0]))
    pairs: dict[tuple[str, str], list[tuple[int, int, int, int, int, int]]] = defaultdict(list)
    for spots in places.values():
        for a in range(len(spots)):
            for b in range(a + 1, len(spots)):
                (fa, ia, sa, ea), (fb, ib, sb, eb) = spots[a], spots[b]
                if fa == fb and abs(ia - ib) < min_lines:  # a window overlapping itself (a run of alike lines)
                    continue
                pairs[(fa, fb)].append((ia - ib, ia, sa, ea, sb, eb))
    found = []
    for (fa, fb), hits in sorted(pairs.items()):
        hits.sort(key=lambda h: (h[0], h[1]))
        block = None  # (offset, last window index, start a, end a, start b, end b): one run of windows
        for offset, index, sa, ea, sb, eb in hits:
            if block and block[0] == offset and index == block[1] + 1:
                block = (offset, index, block[2], ea, block[4], eb)
                continue
            if block:
                found.append(f"{fa}:{block[2]}-{block[3]} ~ {fb}:{block[4]}-{block[5]}")
            block = (offset, index, sa, ea, sb, eb)
        if block:
            found.append(f"{fa}:{block[2]}-{block[3]} ~ {fb}:{block[4]}-{block[5]}")
    return found


def python_files(folders) -> list[Path]:
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a folder.")
        files += sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts and ".venv" not in p.parts)
    return files


def main(argv: list[str]) -> int:
    folders = argv or [str(ROOT / name) for name in DEFAULT_FOLDERS]
    blocks = repeated_blocks(python_files(folders))
    print("\n".join(blocks) if blocks else "no repeated blocks")
    return 1 if blocks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
