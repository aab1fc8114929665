"""Tables in and out: CSV files with a header row, Parquet files, pandas DataFrames and dicts.

pyarrow (extra ``denseprop[parquet]``) reads CSV with its multi-threaded reader and reads and
writes Parquet. Without it, CSV goes through Python's csv module: slower, same columns. Either
way a table becomes ``Column`` objects: numbers as NumPy arrays with a mask of missing values,
text as distinct values (``levels``) and one int32 code per row (-1 where missing), so a
million-row text column is never a million Python strings.

Rows are counted from 1, the first row after the header.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import warnings

import numpy as np

# Text that means "no value", the same for both readers (pyarrow's defaults plus "None").
NULL_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
               "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
TRUE_VALUES = ("true", "True", "TRUE")
FALSE_VALUES = ("false", "False", "FALSE")
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"
STDIO = "-"
_INT64 = (-2**63, 2**63 - 1)


class TableError(ValueError):
    """A problem with the user's data, in one line naming the file, the column and the row."""


def is_parquet_name(path):
    return str(path).lower().endswith(PARQUET_SUFFIXES)


def source_name(path):
    return "<stdin>" if path == STDIO else os.fspath(path)


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    import pyarrow.csv  # noqa: F401
    return pyarrow


def _need_pyarrow(what):
    pa = _pyarrow()
    if pa is None:
        raise TableError(f"{what} needs pyarrow: pip install 'denseprop[parquet]'")
    return pa


def rows_text(rows, limit=5):
    """'rows 3, 8 and 12' (1-based) from 0-based indices, the first `limit` and a count of the rest."""
    rows = [int(r) + 1 for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    if len(rows) == 1:
        return f"row {shown}"
    if len(rows) > limit:
        return f"rows {shown} and {len(rows) - limit:,} more"
    head, _, last = shown.rpartition(", ")
    return f"rows {head} and {last}"


def parses_as_number(text):
    """Whether the text reads as a number (as both readers read numbers)."""
    if "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


class Column:
    """One column: kind "int", "float", "bool" (values, missing mask or None), "text" (levels,
    codes) or "other" (a type denseprop cannot use, named in `type_name`)."""

    def __init__(self, name, kind, values=None, missing=None, levels=None, codes=None, type_name=None):
        self.name, self.kind = name, kind
        self.values, self.missing = values, missing
        self.levels, self.codes = levels, codes
        self.type_name = type_name or kind

    def __len__(self):
        return len(self.codes) if self.kind == "text" else len(self.values)

    @property
    def is_number(self):
        return self.kind in ("int", "float", "bool")

    def missing_mask(self):
        if self.kind == "text":
            return self.codes < 0
        if self.missing is not None:
            return self.missing
        if self.kind == "float":
            return np.isnan(self.values)
        return None

    def missing_rows(self):
        mask = self.missing_mask()
        return np.empty(0, dtype=np.int64) if mask is None else np.flatnonzero(mask)

    def take(self, rows):
        """The column restricted to `rows` (0-based indices)."""
        if self.kind == "text":
            return Column(self.name, "text", levels=self.levels, codes=self.codes[rows])
        if self.kind == "other":
            return self
        missing = None if self.missing is None else self.missing[rows]
        return Column(self.name, self.kind, self.values[rows], missing)

    def as_text(self):
        """The same column as text (numbers written as Python writes them)."""
        if self.kind in ("text", "other"):
            return self
        values = self.values
        mask = self.missing_mask()
        uniques, codes = np.unique(values, return_inverse=True)
        codes = codes.astype(np.int32).reshape(-1)
        if mask is not None:
            codes[mask] = -1
        levels = np.array([str(v.item()) for v in uniques], dtype=object)
        return Column(self.name, "text", levels=levels, codes=codes)


class Table:
    """Columns in their file order, with the file's name for messages."""

    def __init__(self, columns, n_rows, source):
        self.columns = {c.name: c for c in columns}
        self.n_rows, self.source = n_rows, source

    @property
    def names(self):
        return list(self.columns)

    def __contains__(self, name):
        return name in self.columns

    def __getitem__(self, name):
        return self.columns[name]

    def take(self, rows):
        return Table([c.take(rows) for c in self.columns.values()], len(rows), self.source)


# --------------------------------------------------------------------------------------
# Reading.

def read_table(path, *, text_columns=(), stdin=None):
    """The table in `path` ("-" for standard input): Parquet by its name (or, on standard input,
    by its first bytes), else CSV with a header row. `text_columns` are read as text whatever
    they hold. TableError for anything that is not a readable table; OSError for files that
    cannot be opened."""
    source = source_name(path)
    if path == STDIO:
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        parquet = data[:4] == PARQUET_MAGIC
        handle = data
    else:
        parquet = is_parquet_name(path)
        handle = os.fspath(path)
        if os.path.isdir(handle):
            raise TableError(f"{source} is a directory, not a CSV or Parquet file")
        with open(handle, "rb"):  # a missing or unreadable file raises Python's own OSError here
            pass
        if os.path.getsize(handle) == 0:
            raise TableError(f"{source} is empty")
    if isinstance(handle, bytes) and not handle:
        raise TableError(f"{source} is empty (nothing on standard input)")
    text_columns = set(text_columns)
    if parquet:
        columns, n_rows = _read_parquet(handle, source, text_columns)
    else:
        delimiter = "\t" if str(path).lower().endswith(".tsv") else ","
        reader = _read_csv_arrow if _pyarrow() is not None else _read_csv_python
        columns, n_rows = reader(handle, source, text_columns, delimiter)
    if n_rows == 0:
        raise TableError(f"{source} has a header but no rows")
    return Table(columns, n_rows, source)


def _check_header(names, source):
    """Unique, non-blank column names; blank ones (a pandas index, say) become unnamed_<k>."""
    names = [n if n.strip() else f"unnamed_{k + 1}" for k, n in enumerate(names)]
    seen = set()
    for name in names:
        if name in seen:
            raise TableError(f"{source}: the header names column {name!r} twice; rename one of them")
        seen.add(name)
    return names


def _stream(handle):
    return io.BytesIO(handle) if isinstance(handle, bytes) else handle


def _read_csv_arrow(handle, source, text_columns, delimiter):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    forced = set(text_columns)
    newlines_in_values = False  # faster; turned on only for a file that has quoted line breaks
    while True:
        convert = pacsv.ConvertOptions(null_values=list(NULL_VALUES), true_values=list(TRUE_VALUES),
                                       false_values=list(FALSE_VALUES), strings_can_be_null=True,
                                       quoted_strings_can_be_null=True,
                                       column_types={name: pa.string() for name in forced})
        parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines_in_values)
        try:
            table = pacsv.read_csv(_stream(handle), parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as err:
            message = str(err)
            if "Empty CSV file" in message:
                raise TableError(f"{source} is empty") from None
            # Locate the faulty row exactly: pyarrow's multi-threaded parser does not number rows.
            _scan_csv(handle, source, delimiter)
            if not newlines_in_values:
                newlines_in_values = True
                continue
            raise TableError(f"{source} is not a readable CSV file: {message.splitlines()[0]}") from None
        names = _check_header(table.column_names, source)
        # Dates and times become text with the file's own spelling, as the Python reader reads them.
        temporal = {n for n, t in zip(names, table.schema.types)
                    if pa.types.is_temporal(t) and n not in forced}
        if not temporal:
            break
        forced |= temporal
    columns = [_arrow_column(name, table.column(i), source) for i, name in enumerate(names)]
    return columns, table.num_rows


def _read_parquet(handle, source, text_columns):
    pa = _need_pyarrow(f"reading the Parquet file {source}")
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(pa.BufferReader(handle) if isinstance(handle, bytes) else handle)
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise TableError(f"{source} is not a readable Parquet file: {str(err).splitlines()[0]}") from None
    names = _check_header(table.column_names, source)
    columns = []
    for i, name in enumerate(names):
        col = table.column(i)
        if name in text_columns or pa.types.is_temporal(col.type):
            col = _arrow_cast(col, pa.string())
        columns.append(_arrow_column(name, col, source))
    return columns, table.num_rows


def _arrow_cast(col, type_):
    try:
        return col.cast(type_)
    except Exception:  # a type with no cast stays as it is and is reported when used
        return col


def _arrow_column(name, col, source):
    import pyarrow as pa
    import pyarrow.compute as pc
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = _arrow_cast(col, pa.string()), pa.string()
    if pa.types.is_null(t):
        return Column(name, "float", np.full(len(col), np.nan), np.ones(len(col), dtype=bool))
    if pa.types.is_decimal(t):
        col, t = col.cast(pa.float64()), pa.float64()
    if pa.types.is_integer(t) and pa.types.is_uint64(t) and col.null_count < len(col) \
            and pc.max(col).as_py() > _INT64[1]:
        col, t = col.cast(pa.float64()), pa.float64()
    kinds = ((pa.types.is_integer, "int", pa.int64()), (pa.types.is_floating, "float", pa.float64()),
             (pa.types.is_boolean, "bool", pa.bool_()))
    for test, kind, target in kinds:
        if test(t):
            missing = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
            filled = col.cast(target)
            if col.null_count:
                filled = filled.fill_null(pa.scalar(0 if kind != "bool" else False, target))
            values = filled.to_numpy(zero_copy_only=False)
            if kind == "float" and missing is not None:
                values = values.copy()
                values[missing] = np.nan
            return Column(name, kind, values, missing)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        encoded = pc.dictionary_encode(col)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        levels = np.array(encoded.dictionary.to_pylist(), dtype=object)
        return Column(name, "text", levels=levels, codes=codes)
    return Column(name, "other", type_name=str(t))


def _csv_text(handle):
    stream = io.BytesIO(handle) if isinstance(handle, bytes) else open(handle, "rb")
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _scan_csv(handle, source, delimiter):
    """The header, read with Python's csv module; with every row scanned when the cells could
    not be read, to raise a TableError naming the faulty row."""
    with _csv_text(handle) as text:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise TableError(f"{source} is empty")
            row = 0
            for record in reader:
                if not record:  # blank lines are skipped, as both readers skip them
                    continue
                row += 1
                if len(record) != len(header):
                    raise TableError(f"{source}: row {row} (line {reader.line_num}) has {len(record)} fields "
                                     f"but the header has {len(header)}")
        except csv.Error as err:
            raise TableError(f"{source}: line {reader.line_num} is not valid CSV ({err})") from None
        except UnicodeDecodeError as err:
            raise TableError(f"{source} is not UTF-8 text (after line {reader.line_num}: {err.reason}); "
                             "save it as UTF-8 CSV") from None
    return header


def _first_record(handle, source, delimiter):
    with _csv_text(handle) as text:
        try:
            header = next(csv.reader(text, delimiter=delimiter), None)
        except (csv.Error, UnicodeDecodeError):
            header = _scan_csv(handle, source, delimiter)
    if header is None:
        raise TableError(f"{source} is empty")
    return header


def _read_csv_python(handle, source, text_columns, delimiter):
    """The reader without pyarrow: NumPy's C text reader splits the cells, which stay Python
    strings until each column's kind is known; then each column converts in one NumPy cast."""
    header = _first_record(handle, source, delimiter)
    try:
        with warnings.catch_warnings(), _csv_text(handle) as text:
            warnings.simplefilter("ignore")  # a header without rows is reported below
            cells = np.loadtxt(text, delimiter=delimiter, dtype=object, skiprows=1, quotechar='"',
                               comments=None, ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        _scan_csv(handle, source, delimiter)
        raise TableError(f"{source} is not a readable CSV file ({str(err).splitlines()[0]})") from None
    if len(cells) and cells.shape[1] != len(header):
        _scan_csv(handle, source, delimiter)
        raise TableError(f"{source}: its rows have {cells.shape[1]} fields but the header has {len(header)}")
    names = _check_header(header, source)
    if not len(cells):
        return [Column(name, "text", levels=np.empty(0, dtype=object), codes=np.empty(0, dtype=np.int32))
                for name in names], 0
    columns = [_python_column(name, cells[:, j], name in text_columns) for j, name in enumerate(names)]
    return columns, len(cells)


_NULLS = frozenset(NULL_VALUES)
_BOOLS = dict.fromkeys(TRUE_VALUES, True) | dict.fromkeys(FALSE_VALUES, False)


def _python_column(name, strings, as_text):
    """A column from an object array of strings: int, float or bool when every present cell
    reads as one, else text."""
    missing = np.fromiter((s in _NULLS for s in strings), dtype=bool, count=len(strings))
    mask = missing if missing.any() else None
    present = strings[~missing] if mask is not None else strings
    if not as_text:
        if not len(present):
            return Column(name, "float", np.full(len(strings), np.nan), missing)
        for kind, dtype, fill in (("int", np.int64, "0"), ("float", np.float64, "nan")):
            try:
                values = np.where(missing, fill, strings).astype(dtype) if mask is not None \
                    else strings.astype(dtype)
            except (ValueError, OverflowError, TypeError):
                continue
            return Column(name, kind, values, mask)
        if all(s in _BOOLS for s in present):
            return Column(name, "bool", np.array([_BOOLS.get(s, False) for s in strings]), mask)
    index = {}
    codes = np.fromiter((-1 if m else index.setdefault(s, len(index)) for s, m in zip(strings, missing)),
                        dtype=np.int32, count=len(strings))
    return Column(name, "text", levels=np.array(list(index), dtype=object), codes=codes)


def table_from_columns(data, source="table"):
    """A Table from a pandas DataFrame or a mapping of column name -> values."""
    if hasattr(data, "columns") and hasattr(data, "__getitem__") and hasattr(data, "dtypes"):
        items = [(str(name), data[name]) for name in data.columns]
    elif isinstance(data, dict):
        items = [(str(name), values) for name, values in data.items()]
    else:
        raise TypeError(f"a table must be a pandas DataFrame or a dict of columns, got {type(data).__name__}")
    if not items:
        raise TableError(f"{source} has no columns")
    columns = [_values_column(name, values, source) for name, values in items]
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise TableError(f"{source}: the columns have different lengths "
                         + ", ".join(f"{c.name!r}: {len(c)}" for c in columns[:6]))
    n_rows = lengths.pop()
    if n_rows == 0:
        raise TableError(f"{source} has no rows")
    return Table(columns, n_rows, source)


def _values_column(name, values, source):
    if hasattr(values, "isna") and hasattr(values, "to_numpy"):  # a pandas Series
        missing = np.asarray(values.isna().to_numpy(), dtype=bool)
        kind = values.dtype.kind
        if kind in "biuf" and not hasattr(values.dtype, "categories"):
            if missing.any():
                return _values_column(name, values.to_numpy(dtype=np.float64, na_value=np.nan), source)
            return _values_column(name, values.to_numpy(), source)
        values = values.astype(object).to_numpy()
        return _object_column(name, values, missing)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TableError(f"{source}: column {name!r} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64[1]:
            return Column(name, "float", arr.astype(np.float64))
        return Column(name, "int", arr.astype(np.int64))
    if arr.dtype.kind == "f":
        values = arr.astype(np.float64)
        nan = np.isnan(values)
        return Column(name, "float", values, nan if nan.any() else None)
    if arr.dtype.kind == "b":
        return Column(name, "bool", arr.astype(bool))
    if arr.dtype.kind in "USO":
        obj = arr.astype(object)
        missing = np.fromiter((_is_missing_object(v) for v in obj), dtype=bool, count=len(obj))
        return _object_column(name, obj, missing)
    return Column(name, "other", type_name=str(arr.dtype))


def _is_missing_object(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v in _NULLS)


def _object_column(name, values, missing):
    index = {}
    codes = np.fromiter((-1 if m else index.setdefault(_text(v), len(index)) for v, m in zip(values, missing)),
                        dtype=np.int32, count=len(values))
    return Column(name, "text", levels=np.array(list(index), dtype=object), codes=codes)


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


# --------------------------------------------------------------------------------------
# Writing.

def write_table(columns, path, stdout=None):
    """Writes {name: 1-D array} to `path`: Parquet by its name, else CSV; "-" is standard output."""
    if path != STDIO and is_parquet_name(path):
        pa = _need_pyarrow(f"writing the Parquet file {path}")
        import pyarrow.parquet as pq
        from ._io import write_atomically
        table = pa.table({name: _arrow_ready(values) for name, values in columns.items()})
        write_atomically(os.fspath(path), lambda f: pq.write_table(table, f))
        return
    if path == STDIO:
        out = stdout if stdout is not None else sys.stdout.buffer
        _write_csv(columns, out)
        out.flush()
        return
    from ._io import write_atomically
    write_atomically(os.fspath(path), lambda f: _write_csv(columns, f))


def _arrow_ready(values):
    return list(values) if values.dtype == object else values


def _write_csv(columns, binary):
    pa = _pyarrow()
    if pa is not None:
        import pyarrow.csv as pacsv
        table = pa.table({name: _arrow_ready(values) for name, values in columns.items()})
        pacsv.write_csv(table, binary)
        return
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    cells = [_cells(values) for values in columns.values()]
    writer.writerows(zip(*cells))
    text.detach()


def _cells(values):
    """CSV cells of one column, written as pyarrow writes them."""
    if values.dtype == np.float32:
        return [str(v) for v in values]  # NumPy's shortest float32 spelling, not a float64 one
    if values.dtype == bool:
        return ["true" if v else "false" for v in values.tolist()]
    return values.tolist()
