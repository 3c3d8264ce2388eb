"""Reading spreadsheet CSV files as people actually save them.

Excel writes UTF-8 with a byte-order mark ("CSV UTF-8"), UTF-16 ("Unicode
text") or the Windows code page ("CSV"), and uses a semicolon as the separator
where the decimal mark is a comma. This module turns such bytes into a header
and numbered records, and parses the cells pimsync imports (money, counts)
with messages a person can act on. No database access here.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .models import MONEY_LIMIT

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# What a spreadsheet program may have saved instead of CSV: name it, don't parse it.
BINARY_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (.xlsx)",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"%PDF": "a PDF",
}
# A cell starting with one of these is a formula to a spreadsheet ("CSV injection"):
# exports prefix such text with an apostrophe, imports take the apostrophe off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^(?P<sign>[-+]?)(?P<int>\d*)(?:[.,](?P<frac>\d*))?$")
COUNT_LIMIT = 1_000_000_000


class CsvFileError(Exception):
    """The file as a whole cannot be read; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CsvRecord:
    row: int  # the row number a spreadsheet shows (the header is row 1)
    cells: dict[str, str]
    extra_cells: int  # non-empty cells beyond the header's columns


@dataclass(frozen=True)
class CsvTable:
    columns: list[str]  # normalised header names, in file order
    records: list[CsvRecord]
    encoding: str
    delimiter: str

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES[self.delimiter]


def normalise_column(name: str) -> str:
    """`Compare at price`, `compare-at-price` and ` COMPARE_AT_PRICE` are one column."""
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\ufeff").strip().lower())


def spreadsheet_text(value: str) -> str:
    """Text for an exported cell that no spreadsheet will run as a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _unescape_cell(value: str) -> str:
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "UTF-8 (with BOM)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        # Excel's plain "CSV" on Windows; SKUs and numbers are ASCII either way.
        return data.decode("cp1252", errors="replace"), "Windows-1252"


def _sniff_delimiter(text: str) -> str:
    """The candidate occurring most often in the header line (a comma on a tie)."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _refuse_binary(data: bytes) -> None:
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise CsvFileError(
                f"This file is {what}, not CSV. In your spreadsheet choose "
                "File → Save As → “CSV UTF-8 (comma delimited)” and upload that file."
            )


def csv_table_read(data: bytes, *, max_rows: int) -> CsvTable:
    """Decode, sniff the separator, read the header and the non-blank records.

    Raises CsvFileError for an empty or binary file, a bad header, a broken
    quote or more than ``max_rows`` records.
    """
    if not data.strip():
        raise CsvFileError("The file is empty.")
    _refuse_binary(data)
    text, encoding = _decode(data)
    if "\x00" in text:
        raise CsvFileError("The file contains binary data; upload a CSV text file.")
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise CsvFileError(
            f"The file cannot be read as CSV near line {reader.line_num}: {exc}."
        ) from None
    while rows and not any(cell.strip() for cell in rows[0]):
        rows.pop(0)
    if not rows:
        raise CsvFileError("The file is empty.")
    columns = [normalise_column(c) for c in rows[0]]
    _check_header(columns)
    records = []
    for index, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # spreadsheets leave blank lines at the end
        records.append(
            CsvRecord(
                row=index,
                cells={c: _unescape_cell(v) for c, v in zip(columns, cells, strict=False) if c},
                extra_cells=sum(1 for v in cells[len(columns) :] if v.strip()),
            )
        )
    if len(records) > max_rows:
        raise CsvFileError(
            f"The file has {len(records):,} rows; at most {max_rows:,} are imported at once. "
            "Split it into smaller files."
        )
    return CsvTable(columns=columns, records=records, encoding=encoding, delimiter=delimiter)


def _check_header(columns: list[str]) -> None:
    named = [c for c in columns if c]
    duplicated = sorted({c for c in named if named.count(c) > 1})
    if duplicated:
        raise CsvFileError(f"The header names these columns twice: {', '.join(duplicated)}.")


def _number_parts(text: str) -> re.Match[str] | None:
    match = _NUMBER.match(text.replace(" ", ""))
    if match is None or not (match["int"] or match["frac"]):
        return None
    return match


def money_parse(text: str, *, column: str) -> Decimal:
    """A price as a person types it: `12.5`, `12,50`; raises ValueError with a message."""
    match = _number_parts(text)
    if match is None:
        raise ValueError(f"{column} {text!r} is not a number (write e.g. 12.50)")
    if match["sign"] == "-":
        raise ValueError(f"{column} {text!r} is negative")
    frac = match["frac"] or ""
    if len(frac) > 2:
        raise ValueError(
            f"{column} {text!r} has more than 2 decimal places (no thousands separators, please)"
        )
    try:
        value = Decimal(f"{match['int'] or '0'}.{frac or '0'}").quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if value >= MONEY_LIMIT:
        raise ValueError(f"{column} {text!r} is too large")
    return value


def count_parse(text: str, *, column: str) -> int:
    """A counted quantity: a whole number of 0 or more (`12.0` is 12)."""
    match = _number_parts(text)
    if match is None:
        raise ValueError(f"{column} {text!r} is not a whole number")
    if match["frac"] and int(match["frac"]) != 0:
        raise ValueError(f"{column} {text!r} is not a whole number")
    value = int(match["int"] or "0")
    if match["sign"] == "-" and value:
        raise ValueError(f"{column} {text!r} is negative")
    if value > COUNT_LIMIT:
        raise ValueError(f"{column} {text!r} is too large")
    return value
