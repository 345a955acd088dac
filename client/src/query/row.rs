//! Reading the cells of a selected row, and writing the lists a query
//! binds.

use crate::store::Value;
use crate::ClientError;

/// One row as `Store::select` returns it, read by column.
pub struct Row<'a>(pub &'a [Value]);

impl Row<'_> {
    fn cell(&self, i: usize) -> Result<&Value, ClientError> {
        self.0
            .get(i)
            .ok_or_else(|| ClientError::Record(format!("a row has no column {i}")))
    }

    pub fn int(&self, i: usize) -> Result<i64, ClientError> {
        self.opt_int(i)?
            .ok_or_else(|| ClientError::Record(format!("column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, ClientError> {
        match self.cell(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            other => Err(wrong(i, "an integer", other)),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, ClientError> {
        self.opt_text(i)?
            .ok_or_else(|| ClientError::Record(format!("column {i} is NULL")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, ClientError> {
        match self.cell(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(wrong(i, "text", other)),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<&[u8], ClientError> {
        match self.cell(i)? {
            Value::Bytes(b) => Ok(b),
            other => Err(wrong(i, "bytes", other)),
        }
    }
}

fn wrong(i: usize, expected: &str, found: &Value) -> ClientError {
    ClientError::Record(format!(
        "column {i} holds {found:?} where {expected} belongs"
    ))
}

/// `?, ?, ?` for `n` values (an `IN (...)` list).
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
