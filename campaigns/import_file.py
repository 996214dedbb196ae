"""Reading a list to import: CSV or XLSX, its header row, and the mapping of columns to Beacon's fields."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

from openpyxl import load_workbook

# What a column may be mapped to; the phone number is the only one required.
FIELDS = ("phone", "language", "area", "first_name")
XLSX_MAGIC = b"PK\x03\x04"  # an XLSX file is a zip archive


class ImportFileError(Exception):
    """A file or mapping that cannot be imported (the message names columns, never cell contents)."""


@dataclass(frozen=True)
class Table:
    """A list's header and rows (cells as text), numbered as a spreadsheet numbers them (the header is row 1)."""

    sha256: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def numbered(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """Each row with its spreadsheet row number."""
        return enumerate(self.rows, 2)


def _cell(value: object) -> str:
    """A cell as text: a number typed into a spreadsheet keeps its digits (no ``.0``, no exponent)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(content: bytes) -> Table:
    """Read a CSV (UTF-8, any common delimiter) or XLSX (its first sheet) file."""
    digest = hashlib.sha256(content).hexdigest()
    if content.startswith(XLSX_MAGIC):
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
            raise ImportFileError(f"not a readable XLSX file ({exc.__class__.__name__})") from None
        try:
            sheet = book.worksheets[0]
            rows = [tuple(_cell(v) for v in row) for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportFileError("a CSV file must be UTF-8") from None
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        rows = [tuple(cell.strip() for cell in row) for row in csv.reader(io.StringIO(text), dialect)]
    rows = [row for row in rows if any(row)]
    if not rows:
        raise ImportFileError("the file has no header row")
    header, body = rows[0], rows[1:]
    return Table(digest, header, tuple(body))


def parse_mapping(spec: str) -> dict[str, str]:
    """``phone=Phone,language=Lang`` -> {field: column header}."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not column:
            raise ImportFileError(f"--map wants FIELD=COLUMN pairs, got {part!r}")
        if field not in FIELDS:
            raise ImportFileError(f"unknown field {field!r}: map any of {', '.join(FIELDS)}")
        mapping[field] = column
    return mapping


def column_indexes(header: tuple[str, ...], mapping: dict[str, str]) -> dict[str, int]:
    """Where each mapped field is in the rows; the phone number must be mapped."""
    if "phone" not in mapping:
        raise ImportFileError("map the phone number column: --map phone=COLUMN")
    folded = {name.strip().casefold(): n for n, name in enumerate(header)}
    indexes: dict[str, int] = {}
    for field, column in mapping.items():
        if column.strip().casefold() not in folded:
            raise ImportFileError(f"no column {column!r} in the file (columns: {', '.join(header)})")
        indexes[field] = folded[column.strip().casefold()]
    return indexes
