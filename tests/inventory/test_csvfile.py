"""Reading CSV bytes the way spreadsheets write them, and parsing money and counts."""

from decimal import Decimal

import pytest

from inventory.csvfile import (
    CsvFileError,
    count_parse,
    csv_table_read,
    money_parse,
    spreadsheet_text,
)


def test_utf8_bom_semicolons_crlf_and_blank_lines():
    data = "\ufeffSKU;Compare at price\r\n\r\nA-1; 12,50 \r\n;\r\n".encode()

    table = csv_table_read(data, max_rows=10)

    assert (table.columns, table.encoding, table.delimiter_name) == (
        ["sku", "compare_at_price"],
        "UTF-8 (with BOM)",
        "semicolon",
    )
    assert [(r.row, r.cells) for r in table.records] == [
        (3, {"sku": "A-1", "compare_at_price": "12,50"})
    ]


def test_utf16_and_tabs():
    table = csv_table_read("sku\tprice\nA-1\t3\n".encode("utf-16"), max_rows=10)

    assert (table.encoding, table.delimiter_name, table.records[0].cells) == (
        "UTF-16",
        "tab",
        {"sku": "A-1", "price": "3"},
    )


def test_windows_1252_falls_back_and_quoted_separators_stay_in_the_value():
    table = csv_table_read('sku,product\nA-1,"Café, noir"\n'.encode("cp1252"), max_rows=10)

    assert table.encoding == "Windows-1252"
    assert table.records[0].cells == {"sku": "A-1", "product": "Café, noir"}


def test_extra_cells_beyond_the_header_are_counted():
    table = csv_table_read(b"sku,price\nA-1,1,50\nB-2,2,\n", max_rows=10)

    assert [r.extra_cells for r in table.records] == [1, 0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"  \n", "The file is empty."),
        (b"PK\x03\x04...", "This file is an Excel workbook (.xlsx), not CSV."),
        (b"\xd0\xcf\x11\xe0...", "This file is an old Excel workbook (.xls), not CSV."),
        (b"sku,price\x00\n", "The file contains binary data; upload a CSV text file."),
        (
            b'sku,price\nA-1,"unclosed\n',
            "The file cannot be read as CSV near line 2: unexpected end of data.",
        ),
        (b"Price,price\n1,2\n", "The header names these columns twice: price."),
        (b"sku\nA\nB\nC\n", "The file has 3 rows; at most 2 are imported at once."),
    ],
)
def test_unreadable_files_say_why(data, message):
    with pytest.raises(CsvFileError) as raised:
        csv_table_read(data, max_rows=2)

    assert raised.value.message.startswith(message)


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.5", "12.50"), ("12,50", "12.50"), ("0", "0.00"), (".5", "0.50"), ("+7", "7.00")],
)
def test_money_accepts_what_people_type(text, value):
    assert money_parse(text, column="price") == Decimal(value)


@pytest.mark.parametrize(("text", "value"), [("7", 7), ("7.0", 7), ("0", 0), ("-0", 0)])
def test_counts_are_whole_numbers(text, value):
    assert count_parse(text, column="counted") == value


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (money_parse, "abc", "price 'abc' is not a number (write e.g. 12.50)"),
        (money_parse, "1e3", "price '1e3' is not a number (write e.g. 12.50)"),
        (money_parse, "NaN", "price 'NaN' is not a number (write e.g. 12.50)"),
        (money_parse, "$5", "price '$5' is not a number (write e.g. 12.50)"),
        (money_parse, "-1", "price '-1' is negative"),
        (
            money_parse,
            "1,234",
            "price '1,234' has more than 2 decimal places (no thousands separators, please)",
        ),
        (money_parse, "1.234,56", "price '1.234,56' is not a number (write e.g. 12.50)"),
        (money_parse, "10000000000", "price '10000000000' is too large"),
        (count_parse, "2.5", "price '2.5' is not a whole number"),
        (count_parse, "", "price '' is not a whole number"),
        (count_parse, "-3", "price '-3' is negative"),
        (count_parse, "2000000000", "price '2000000000' is too large"),
    ],
)
def test_numbers_are_refused_with_a_reason(parse, text, message):
    with pytest.raises(ValueError, match=r".*") as raised:
        parse(text, column="price")

    assert str(raised.value) == message


def test_formula_cells_are_defused_on_export_and_restored_on_import():
    assert [spreadsheet_text(v) for v in ("=1+1", "-X", "@a", "A-1", "")] == [
        "'=1+1",
        "'-X",
        "'@a",
        "A-1",
        "",
    ]

    table = csv_table_read(b"sku,note\n'-X,'plain\n", max_rows=10)

    assert table.records[0].cells == {"sku": "-X", "note": "'plain"}
