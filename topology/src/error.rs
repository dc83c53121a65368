//! The one error type of the topology crate, and the located ingest problems it carries.

use std::fmt;

/// Where an ingest problem sits: a table, maybe a 1-based data row, maybe a column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub table: String,
    /// 1-based data row (the header is not counted; in a CSV file it is line `row + 1`).
    pub row: Option<usize>,
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn table(table: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn column(table: &str, column: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: None,
            column: Some(column.to_string()),
            message: message.into(),
        }
    }

    pub fn cell(table: &str, row: usize, column: &str, message: impl Into<String>) -> Problem {
        Problem {
            table: table.to_string(),
            row: Some(row),
            column: Some(column.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.table)?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
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
    pub errors: Vec<Problem>,
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {}", summary(.0))]
    Invalid(Report),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Read { path: String, message: String },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
