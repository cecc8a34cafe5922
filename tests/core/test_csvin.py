"""Reading inputs as text with header aliases and clear errors (SPEC §2, §10)."""

from __future__ import annotations

import pytest

from caselle_ic.errors import InputError
from caselle_ic.tabular.csvin import read_text_csv


def test_values_stay_text_and_headers_map_case_insensitively(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b'\xef\xbb\xbfACCT NO,Customer_Name,amount\r\n00123,"Smith, ""J""",1.50\r\n0099,Lee,2\r\n')
    df = read_text_csv(
        p, column_map={"Acct No": "account_number"}, required=["account_number", "customer_name"]
    )
    assert list(df["account_number"]) == ["00123", "0099"]
    assert list(df["customer_name"]) == ['Smith, "J"', "Lee"]
    assert list(df["amount"]) == ["1.50", "2"]
    assert list(df["_line"]) == [2, 3]


def test_line_numbers_follow_quoted_newlines(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text('a,b\n1,"two\nlines"\n3,4\n', encoding="utf-8")
    df = read_text_csv(p)
    assert list(df["_line"]) == [2, 4]
    assert df["b"].iloc[0] == "two\nlines"


def test_known_columns_are_kept_and_missing_optional_ones_added_empty(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b,zz\n1,2,3\n", encoding="utf-8")
    df = read_text_csv(p, known=["a", "b", "c"])
    assert list(df.columns) == ["a", "b", "c", "_line"]
    assert df["c"].iloc[0] == ""


def test_missing_required_column_names_it_and_the_fix(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_text_csv(p, required=["account_number"])
    msg = str(err.value)
    assert str(p) in msg and "line 1" in msg and "account_number" in msg and "[extract].columns" in msg


def test_wrong_encoding_names_the_line_and_suggests_cp1252(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes("a,b\n1,2\nJos\u00e9,3\n".encode("cp1252"))
    with pytest.raises(InputError, match=r"line 3: byte 0xe9 is not valid utf-8.*cp1252"):
        read_text_csv(p)
    assert read_text_csv(p, encoding="cp1252")["a"].iloc[1] == "Jos\u00e9"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"just one column\nvalue\n", "not comma-delimited"),
        (b"a,b\n1,2\n3\n", r"line 3: has 1 fields where the header has 2"),
        (b'a,b\n1,"unterminated\n', "line"),
    ],
)
def test_not_csv_is_refused_clearly(tmp_path, content, pattern):
    p = tmp_path / "x.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        read_text_csv(p)


def test_two_headers_mapping_to_one_column_is_refused(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("Acct No,account_number\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="both map to 'account_number'"):
        read_text_csv(p, column_map={"Acct No": "account_number"})


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_text_csv(tmp_path / "nope.csv")


def test_fast_read_is_refused_when_a_block_cut_hid_a_quoted_line_break(tmp_path):
    """The fast read (no newlines_in_values) can misparse silently when a block boundary
    falls inside a quoted value: same record count, no line break left in any value.
    The line-break counts must refuse it, and the reader must still return the truth."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from caselle_ic.tabular.breaks import line_break_counts
    from caselle_ic.tabular.csvin import _one_line_per_record

    rows = ["a,b,c"] + [f"{i},xxxxxxxxxx,3" for i in range(20)]
    rows[10] = '9,"line1\nfoo,bar",3'
    p = tmp_path / "x.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    truth = ["xxxxxxxxxx"] * 9 + ["line1\nfoo,bar"] + ["xxxxxxxxxx"] * 10
    silent = []
    for block_size in range(16, 200):
        try:
            table = pacsv.read_csv(
                p,
                read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in "abc"}),
            )
        except pa.ArrowInvalid:
            continue
        if table.column("b").to_pylist() != truth:
            silent.append(table)
    assert silent, "no block size misparses: the premise of this test is gone"
    for misread in silent:
        assert not _one_line_per_record(p, misread, line_break_counts(p))
    df = read_text_csv(p)
    assert df["b"].iloc[9] == "line1\nfoo,bar" and list(df["_line"])[9:11] == [11, 13]


@pytest.mark.parametrize("data", [b"a,b\r\n1,2\r\n3,4\r\n", b"a,b\n1,2\n3,4", b'a,b\r\n1,"x\ry"\r\n3,4\r\n'])
def test_line_break_counts(tmp_path, data):
    from caselle_ic.tabular.breaks import line_break_counts

    p = tmp_path / "x.csv"
    p.write_bytes(data)
    assert line_break_counts(p) == (data.count(b"\n"), data.count(b"\r"), data.count(b"\r\n"))
