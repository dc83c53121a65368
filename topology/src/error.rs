//! The one error type of the topology crate, and the located ingest problems it carries.

use std::fmt;

/// Where an ingest problem sits: a table, maybe a 1-based data row, maybe a column, and
/// the file it was read from when there is one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The contract table the problem is in (`servers`, `power_feeds`, ...).
    pub table: String,
    /// 1-based data row (the header is not counted; in a CSV file it is line `row + 1`).
    pub row: Option<usize>,
    /// The column at fault; `None` for a problem with the whole table or row.
    pub column: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
    /// The file name (`servers.csv`, `servers.parquet`) when the table came from a file.
    pub file: Option<String>,
}

impl Problem {
    /// A problem with a whole table (missing, unreadable).
    pub fn table(table: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: None,
            column: None,
            message: message.into(),
            file: None,
        }
    }

    /// A problem with a whole column of a table (a required column missing).
    pub fn column(table: &str, column: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: None,
            column: Some(column.to_string()),
            message: message.into(),
            file: None,
        }
    }

    /// A problem with one value: `row` is the 1-based data row.
    pub fn cell(table: &str, row: usize, column: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: Some(row),
            column: Some(column.to_string()),
            message: message.into(),
            file: None,
        }
    }

    /// The line of the file the row is on, for a CSV file (its header is line 1).
    pub fn line(&self) -> Option<usize> {
        let csv = self.file.as_deref()?.ends_with(".csv");
        self.row.filter(|_| csv).map(|r| r + 1)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A CSV file's line is what an editor shows; otherwise the data row.
        match (&self.file, self.line(), self.row) {
            (Some(file), Some(line), _) => write!(f, "{file} line {line}")?,
            (Some(file), None, Some(row)) => write!(f, "{file} row {row}")?,
            (Some(file), None, None) => write!(f, "{file}")?,
            (None, _, Some(row)) => write!(f, "{} row {row}", self.table)?,
            (None, _, None) => write!(f, "{}", self.table)?,
        }
        if let Some(column) = &self.column {
            write!(f, " column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem of one ingest, errors first; an export with any error loads nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Rule violations: any one of them makes the ingest fail.
    pub errors: Vec<Problem>,
    /// Oddities that are accepted (a duplicate feed row, ...), reported alongside.
    pub warnings: Vec<Problem>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} error(s), {} warning(s)",
            self.errors.len(),
            self.warnings.len()
        )?;
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

impl Report {
    /// Root causes first: problems with a whole table or column (a missing table or
    /// column makes its rows unreadable), then row problems by table, row and column.
    pub fn sort(&mut self) {
        for list in [&mut self.errors, &mut self.warnings] {
            list.sort_by(|a, b| {
                (a.row.is_some(), &a.table, a.row, &a.column, &a.message).cmp(&(
                    b.row.is_some(),
                    &b.table,
                    b.row,
                    &b.column,
                    &b.message,
                ))
            });
        }
    }

    /// Names the file each problem's table was read from, as `file_of(table)` says.
    pub fn locate(&mut self, file_of: impl Fn(&str) -> Option<String>) {
        for p in self.errors.iter_mut().chain(&mut self.warnings) {
            if p.file.is_none() {
                p.file = file_of(&p.table);
            }
        }
    }
}

/// What ingest, validation and table writing can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input broke rules of the contract; the report names every problem.
    #[error("invalid input: {}", summary(.0))]
    Invalid(Report),
    // `cause` is part of the message, not a separate source: a chain printer would
    // otherwise say it twice.
    /// A file or directory could not be opened or created.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// A table could not be read or written as its format says (bad CSV or Parquet).
    #[error("{path}: {message}")]
    Read {
        /// The file, or the name given to the text read.
        path: String,
        /// What the reader or writer said.
        message: String,
    },
}

fn summary(report: &Report) -> String {
    let mut s = format!("{} error(s)", report.errors.len());
    for e in report.errors.iter().take(3) {
        s.push_str("; ");
        s.push_str(&e.to_string());
    }
    if report.errors.len() > 3 {
        s.push_str("; ...");
    }
    s
}

/// The crate's result type, [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
