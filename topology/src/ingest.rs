//! The IO edge of the topology crate: reading and writing export tables (CSV or Parquet).
//!
//! Everything here moves tables between files and [`RawTable`]s; no rule of the
//! contract is checked here (that is `model`), so the same validation serves both formats.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::raw::{RawInventory, RawTable, TABLES};

/// The file format of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated text with a header row (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

impl Format {
    /// The file extension of the format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// The format a path's extension names, if it is one of ours.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Reads one table file, every column as text (Parquet columns are cast to text).
pub fn read_table(path: &Path) -> Result<RawTable> {
    let format = Format::from_path(path)
        .ok_or_else(|| read_error(path, "unknown table format (expected .csv or .parquet)"))?;
    if !path.exists() {
        return Err(Error::Io {
            path: path.display().to_string(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let df = match format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            // Every column as text: numbers are parsed by the validator, which can say
            // which row and column is wrong.
            .with_infer_schema_length(Some(0))
            .with_parse_options(CsvParseOptions::default().with_missing_is_null(true))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| read_error(path, e))?,
        Format::Parquet => {
            let file = File::open(path).map_err(|cause| Error::Io {
                path: path.display().to_string(),
                cause,
            })?;
            ParquetReader::new(file)
                .finish()
                .map_err(|e| read_error(path, e))?
        }
    };
    dataframe_to_raw(&df).map_err(|e| read_error(path, e))
}

/// Parses CSV text (a header row first, every column as text), e.g. a table fragment of a
/// what-if change; `name` names it in errors.
pub fn parse_csv(name: &str, text: &str) -> Result<RawTable> {
    let err = |e: PolarsError| Error::Read {
        path: name.to_owned(),
        message: e.to_string(),
    };
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_missing_is_null(true))
        .into_reader_with_file_handle(std::io::Cursor::new(text.as_bytes().to_vec()))
        .finish()
        .map_err(err)?;
    dataframe_to_raw(&df).map_err(err)
}

fn dataframe_to_raw(df: &DataFrame) -> PolarsResult<RawTable> {
    let columns: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    let height = df.height();
    let mut rows = vec![Vec::with_capacity(columns.len()); height];
    for column in df.columns() {
        let text = column.cast(&DataType::String)?;
        let text = text.str()?;
        for (row, value) in text.iter().enumerate() {
            rows[row].push(
                value
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Ok(RawTable { columns, rows })
}

/// Finds `NAME.csv` or `NAME.parquet` in `dir`; an error when both exist.
pub fn table_path(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let csv = dir.join(format!("{name}.csv"));
    let parquet = dir.join(format!("{name}.parquet"));
    match (csv.exists(), parquet.exists()) {
        (true, true) => Err(read_error(
            dir,
            format!("both {name}.csv and {name}.parquet exist; keep one"),
        )),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(parquet)),
        (false, false) => Ok(None),
    }
}

/// Reads every table of the contract present in an export directory. Missing tables are
/// simply absent here; the validator decides which are required.
pub fn read_dir(dir: &Path) -> Result<RawInventory> {
    if !dir.is_dir() {
        let (kind, what) = if dir.exists() {
            (std::io::ErrorKind::InvalidInput, "not a directory")
        } else {
            (std::io::ErrorKind::NotFound, "no such directory")
        };
        return Err(Error::Io {
            path: dir.display().to_string(),
            cause: std::io::Error::new(kind, what),
        });
    }
    let mut raw = RawInventory::default();
    for name in TABLES {
        if let Some(path) = table_path(dir, name)? {
            raw.insert(name, read_table(&path)?);
            if let Some(file) = path.file_name() {
                raw.files
                    .insert(name.to_string(), file.to_string_lossy().into_owned());
            }
        }
    }
    Ok(raw)
}

fn raw_to_dataframe(table: &RawTable) -> PolarsResult<DataFrame> {
    let columns: Vec<Column> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values: Vec<Option<&str>> = table
                .rows
                .iter()
                .map(|r| r.get(i).and_then(|v| v.as_deref()))
                .collect();
            Column::new(name.as_str().into(), values)
        })
        .collect();
    DataFrame::new(table.rows.len(), columns)
}

/// Writes one table as CSV or Parquet (by the path's extension).
pub fn write_table(path: &Path, table: &RawTable) -> Result<()> {
    let format = Format::from_path(path)
        .ok_or_else(|| read_error(path, "unknown table format (expected .csv or .parquet)"))?;
    let mut df = raw_to_dataframe(table).map_err(|e| read_error(path, e))?;
    write_frame(path, format, &mut df)
}

/// Writes a frame to `path` in `format`.
fn write_frame(path: &Path, format: Format, df: &mut DataFrame) -> Result<()> {
    let file = File::create(path).map_err(|cause| Error::Io {
        path: path.display().to_string(),
        cause,
    })?;
    match format {
        Format::Csv => CsvWriter::new(file)
            .finish(df)
            .map_err(|e| read_error(path, e)),
        Format::Parquet => ParquetWriter::new(file)
            .finish(df)
            .map(|_| ())
            .map_err(|e| read_error(path, e)),
    }
}

/// One typed column of a report table (nulls where a value does not apply).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Text values.
    Text(Vec<Option<String>>),
    /// Floating-point values.
    Float(Vec<Option<f64>>),
    /// Integer values.
    Int(Vec<Option<i64>>),
    /// True/false values.
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }
}

/// A report table with typed columns (reports for notebooks, unlike the export tables,
/// which are text until validated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypedTable {
    /// The columns in order, each with its name; all of the same length.
    pub columns: Vec<(String, Values)>,
}

impl TypedTable {
    /// Appends a column (builder style).
    pub fn column(mut self, name: &str, values: Values) -> TypedTable {
        self.columns.push((name.to_owned(), values));
        self
    }
}

/// Writes a typed table as CSV or Parquet (by the path's extension).
///
/// # Panics
/// When the columns differ in length (a bug of the caller).
pub fn write_typed(path: &Path, table: &TypedTable) -> Result<()> {
    let format = Format::from_path(path)
        .ok_or_else(|| read_error(path, "unknown table format (expected .csv or .parquet)"))?;
    let rows = table.columns.first().map_or(0, |c| c.1.len());
    assert!(
        table.columns.iter().all(|c| c.1.len() == rows),
        "ragged table"
    );
    let columns: Vec<Column> = table
        .columns
        .iter()
        .map(|(name, values)| {
            let name = name.as_str().into();
            match values {
                Values::Text(v) => Column::new(name, v),
                Values::Float(v) => Column::new(name, v),
                Values::Int(v) => Column::new(name, v),
                Values::Bool(v) => Column::new(name, v),
            }
        })
        .collect();
    let mut df = DataFrame::new(rows, columns).map_err(|e| read_error(path, e))?;
    write_frame(path, format, &mut df)
}

/// Writes every table of an inventory into `dir` in one format.
pub fn write_dir(dir: &Path, raw: &RawInventory, format: Format) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|cause| Error::Io {
        path: dir.display().to_string(),
        cause,
    })?;
    for (name, table) in &raw.tables {
        write_table(&dir.join(format!("{name}.{}", format.extension())), table)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Table files of any bytes, and the tiny fixture's files mutated byte by byte: read
    //! and validated, never a panic; a refusal names the file or the table.

    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::model::Inventory;

    fn tiny_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/tiny")
    }

    /// The tiny fixture copied to `dir`, with `file` holding `bytes`.
    fn zone_with(dir: &Path, file: &str, bytes: &[u8]) {
        for entry in std::fs::read_dir(tiny_dir()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        std::fs::write(dir.join(file), bytes).unwrap();
    }

    fn file() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "racks.csv",
            "servers.csv",
            "network_devices.csv",
            "network_links.csv",
            "risk_groups.csv",
            "power_devices.csv",
            "power_feeds.csv",
        ])
    }

    /// A file's bytes with a few bytes flipped, inserted or cut.
    fn mutated(file: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let original = std::fs::read(tiny_dir().join(file)).unwrap();
        let len = original.len();
        proptest::collection::vec((0..3u8, 0..len.max(1), any::<u8>()), 1..6).prop_map(
            move |changes| {
                let mut bytes = original.clone();
                for (kind, at, byte) in changes {
                    let at = at.min(bytes.len());
                    match kind {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => bytes.push(byte),
                    }
                }
                bytes
            },
        )
    }

    fn read_and_validate(dir: &Path) -> Result<(), String> {
        let raw = read_dir(dir).map_err(|e| e.to_string())?;
        Inventory::from_raw(&raw).map_err(|e| e.to_string())?;
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn a_table_of_any_bytes_is_read_or_refused_by_name(
            file in file(),
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let dir = tempfile::tempdir().unwrap();
            zone_with(dir.path(), file, &bytes);
            if let Err(message) = read_and_validate(dir.path()) {
                let table = file.trim_end_matches(".csv");
                prop_assert!(message.contains(table), "{file}: {message}");
            }
        }

        #[test]
        fn a_mutated_table_is_read_or_refused_by_name(
            (file, bytes) in file().prop_flat_map(|f| (Just(f), mutated(f))),
        ) {
            let dir = tempfile::tempdir().unwrap();
            zone_with(dir.path(), file, &bytes);
            if let Err(message) = read_and_validate(dir.path()) {
                prop_assert!(!message.is_empty(), "{file}");
            }
        }
    }
}
