//! [`Value`] to and from PostgreSQL's types, so that a query returns the
//! same values from either backend: whole numbers (and booleans, as 0 or
//! 1) are `Int`, strings `Text`, byte strings `Bytes`.

use std::error::Error;

use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::store::Value;

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            // A parameter PostgreSQL typed narrower, e.g. `? + 1`.
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)
                .map_err(|_| narrowing(*i, ty))?
                .to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)
                .map_err(|_| narrowing(*i, ty))?
                .to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::NAME | &Type::BPCHAR) => {
                s.as_str().to_sql(ty, out)
            }
            (Value::Bytes(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            _ => Err(format!(
                "a {} cannot be bound where PostgreSQL expects {ty}: cast the placeholder in the query, e.g. CAST(? AS BIGINT)",
                self.kind()
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Which value fits which type is decided per value, in to_sql: a
        // NULL fits every type.
        true
    }

    to_sql_checked!();
}

fn narrowing(i: i64, ty: &Type) -> BoxError {
    format!("{i} does not fit the {ty} PostgreSQL expects here: cast the placeholder, e.g. CAST(? AS BIGINT)").into()
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            // As SQLite's REAL is read: truncated.
            Type::FLOAT8 => Value::Int(f64::from_sql(ty, raw)? as i64),
            Type::FLOAT4 => Value::Int(f32::from_sql(ty, raw)? as i64),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            Type::BYTEA => Value::Bytes(Vec::from_sql(ty, raw)?),
            _ => return Err(unreadable(ty).unwrap_or_default().into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        // Refused types are refused in from_sql, with a message saying
        // what to cast to.
        true
    }
}

/// Why a column of type `ty` cannot be read into a [`Value`], if it cannot.
pub(super) fn unreadable(ty: &Type) -> Option<String> {
    match *ty {
        Type::INT8
        | Type::INT4
        | Type::INT2
        | Type::BOOL
        | Type::FLOAT8
        | Type::FLOAT4
        | Type::TEXT
        | Type::VARCHAR
        | Type::NAME
        | Type::BPCHAR
        | Type::UNKNOWN
        | Type::BYTEA => None,
        // SUM of BIGINT is NUMERIC in PostgreSQL (INTEGER in SQLite).
        Type::NUMERIC => Some(
            "NUMERIC values are not read: cast the column to BIGINT in the query, \
             e.g. CAST(SUM(x) AS BIGINT), which SQLite runs too"
                .into(),
        ),
        _ => Some(format!(
            "{ty} values are not read: cast the column to BIGINT, TEXT or BYTEA in the query"
        )),
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "whole number",
            Value::Text(_) => "text",
            Value::Bytes(_) => "byte string",
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn bound(v: &Value, ty: &Type) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        match v.to_sql_checked(ty, &mut out) {
            Ok(IsNull::No) => Ok(out.to_vec()),
            Ok(IsNull::Yes) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn whole_numbers_bind_to_every_integer_type_they_fit() {
        assert_eq!(
            bound(&Value::Int(7), &Type::INT8).unwrap(),
            7i64.to_be_bytes()
        );
        assert_eq!(
            bound(&Value::Int(7), &Type::INT4).unwrap(),
            7i32.to_be_bytes()
        );
        assert_eq!(
            bound(&Value::Int(-7), &Type::INT2).unwrap(),
            (-7i16).to_be_bytes()
        );
        let err = bound(&Value::Int(1 << 40), &Type::INT4).unwrap_err();
        assert!(err.contains("CAST(? AS BIGINT)"), "{err}");
        let err = bound(&Value::Int(1), &Type::TEXT).unwrap_err();
        assert!(err.contains("whole number"), "{err}");
        assert!(bound(&Value::Null, &Type::BOOL).is_ok());
    }

    #[test]
    fn columns_are_read_by_type() {
        let read = |ty: &Type, raw: &[u8]| Value::from_sql(ty, raw).map_err(|e| e.to_string());
        assert_eq!(read(&Type::INT4, &5i32.to_be_bytes()), Ok(Value::Int(5)));
        assert_eq!(read(&Type::BOOL, &[1]), Ok(Value::Int(1)));
        assert_eq!(read(&Type::NAME, b"rw"), Ok(Value::Text("rw".into())));
        assert_eq!(read(&Type::BYTEA, &[1, 2]), Ok(Value::Bytes(vec![1, 2])));
        let err = read(&Type::NUMERIC, &[0; 8]).unwrap_err();
        assert!(err.contains("cast the column to BIGINT"), "{err}");
        assert_eq!(Value::from_sql_null(&Type::INT8).unwrap(), Value::Null);
    }
}
