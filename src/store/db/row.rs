//! Owned rows and typed values, the same whichever driver produced them.

use std::sync::Arc;

use super::{DbError, DbResult};

/// A bound parameter or a column value. Parameters keep their type when
/// NULL, as PostgreSQL types every parameter. Arrays are parameters only,
/// and PostgreSQL's only (`UNNEST($1::text[], ...)`: many rows through a
/// statement whose text does not depend on how many).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
    IntArray(Vec<Option<i64>>),
    RealArray(Vec<Option<f64>>),
    TextArray(Vec<Option<String>>),
}

macro_rules! value_from {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                let conv: fn($t) -> _ = $conv;
                Value::$variant(conv(v))
            }
        }
    )*};
}
value_from!(Int: i64 => Some, Option<i64> => |v| v, i32 => |v| Some(v.into()));
value_from!(Real: f64 => Some, Option<f64> => |v| v);
value_from!(Bool: bool => Some);
value_from!(IntArray: Vec<Option<i64>> => |v| v);
value_from!(RealArray: Vec<Option<f64>> => |v| v);
value_from!(TextArray: Vec<Option<String>> => |v| v);
value_from!(Text:
    String => Some,
    Option<String> => |v| v,
    &str => |v| Some(v.to_string()),
    &String => |v| Some(v.clone()),
    Option<&str> => |v| v.map(str::to_string),
    Option<&String> => |v| v.cloned(),
);

/// A column type a [`Row`] can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => *v,
            Value::Bool(v) => v.map(i64::from),
            _ => None,
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|v| v.try_into().ok())
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(v) => *v,
            Value::Int(v) => v.map(|v| v as f64),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(v) => *v,
            Value::Int(v) => v.map(|v| v != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => v.clone(),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        let is_null = match value {
            Value::Int(v) => v.is_none(),
            Value::Real(v) => v.is_none(),
            Value::Text(v) => v.is_none(),
            Value::Bool(v) => v.is_none(),
            Value::IntArray(_) | Value::RealArray(_) | Value::TextArray(_) => false,
        };
        if is_null {
            Some(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// A column by position or by name.
pub trait ColumnIndex {
    fn position(&self, columns: &[String]) -> Option<usize>;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

/// One result row, owned, whichever driver produced it.
#[derive(Debug)]
pub struct Row {
    pub(super) columns: Arc<[String]>,
    pub(super) values: Vec<Value>,
}

impl Row {
    /// The column's value as `T`; an unknown column or a value of another
    /// type is an error (a bug in the statement, not the client's).
    pub fn try_get<T: FromValue, I: ColumnIndex>(&self, index: I) -> DbResult<T> {
        let position = index.position(&self.columns).ok_or_else(|| {
            DbError::Other(anyhow::anyhow!("no such column in {:?}", self.columns))
        })?;
        T::from_value(&self.values[position]).ok_or_else(|| {
            DbError::Other(anyhow::anyhow!(
                "column {} holds {:?}, not a {}",
                self.columns[position],
                self.values[position],
                std::any::type_name::<T>()
            ))
        })
    }
}
