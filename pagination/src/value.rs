//! The values a sort key is made of.

use std::cmp::Ordering;
use std::fmt;

/// One column's value in a sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Value {
    /// SQL `NULL`: only in columns declared nullable.
    Null,
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// UTF-8 text, compared by bytes (as SQLite's `BINARY` and PostgreSQL's `C` collations).
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// A UUID's 16 bytes, compared as bytes.
    Uuid([u8; 16]),
}

/// The type of a sort column, which every non-null value in it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnType {
    /// [`Value::Int`].
    Int,
    /// [`Value::Uint`].
    Uint,
    /// [`Value::Text`].
    Text,
    /// [`Value::Bytes`].
    Bytes,
    /// [`Value::Timestamp`].
    Timestamp,
    /// [`Value::Uuid`].
    Uuid,
}

impl ColumnType {
    pub(crate) fn tag(self) -> u8 {
        match self {
            ColumnType::Int => 1,
            ColumnType::Uint => 2,
            ColumnType::Text => 3,
            ColumnType::Bytes => 4,
            ColumnType::Timestamp => 5,
            ColumnType::Uuid => 6,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ColumnType::Int => "int",
            ColumnType::Uint => "uint",
            ColumnType::Text => "text",
            ColumnType::Bytes => "bytes",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Uuid => "uuid",
        };
        f.write_str(name)
    }
}

impl Value {
    /// The type of a non-null value; `None` for [`Value::Null`].
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Int(_) => ColumnType::Int,
            Value::Uint(_) => ColumnType::Uint,
            Value::Text(_) => ColumnType::Text,
            Value::Bytes(_) => ColumnType::Bytes,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Uuid(_) => ColumnType::Uuid,
        })
    }

    /// Compares two non-null values of the same type in ascending order; values of different
    /// types (which a validated sort never compares) order by type.
    pub(crate) fn cmp_same_type(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::Uint(a), Value::Uint(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            _ => {
                let tag = |v: &Value| v.column_type().map_or(0, ColumnType::tag);
                tag(self).cmp(&tag(other))
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Uint(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Uint(u64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
