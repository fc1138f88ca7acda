//! Sort orders: which columns, which direction, where NULLs go, and a unique tiebreaker.

use std::cmp::Ordering;

use crate::error::Error;
use crate::value::{ColumnType, Value};

/// A column's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Where NULLs sort in a nullable column, whatever its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nulls {
    /// Before every value.
    First,
    /// After every value.
    Last,
}

/// One column of a sort.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    name: String,
    ty: ColumnType,
    order: Order,
    /// `None` for a column that never holds NULL.
    nulls: Option<Nulls>,
}

impl Column {
    /// The column's name (as SQL sees it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The type of its values.
    pub fn column_type(&self) -> ColumnType {
        self.ty
    }

    /// Its direction.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Where its NULLs go, or `None` if it is not nullable.
    pub fn nulls(&self) -> Option<Nulls> {
        self.nulls
    }

    /// Compares two values of this column in the sort's order.
    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        let nulls_first = self.nulls == Some(Nulls::First);
        match (a, b) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => {
                if nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, Value::Null) => {
                if nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            _ => match self.order {
                Order::Asc => a.cmp_same_type(b),
                Order::Desc => b.cmp_same_type(a),
            },
        }
    }
}

/// A validated sort order for keyset paging: columns compared one after another as a row, the
/// last of which is unique, so every item has a distinct key and a cursor names exactly one
/// position.
///
/// # Examples
///
/// ```
/// use shardkit_pagination::{ColumnType, Sort, Value};
///
/// // Newest first, ties broken by id: "ORDER BY created_at DESC, id ASC".
/// let sort = Sort::builder()
///     .desc("created_at", ColumnType::Timestamp)
///     .unique_asc("id", ColumnType::Uint)
///     .build()?;
/// let a = [Value::Timestamp(200), Value::Uint(1)];
/// let b = [Value::Timestamp(100), Value::Uint(0)];
/// assert!(sort.compare(&a, &b).is_lt()); // newer sorts first
///
/// // A sort without a unique last column is refused: pages could skip or repeat rows.
/// assert!(Sort::builder().asc("score", ColumnType::Int).build().is_err());
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sort {
    columns: Vec<Column>,
}

/// Builds a [`Sort`]; see [`Sort::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SortBuilder {
    columns: Vec<Column>,
    unique: Option<usize>,
}

impl SortBuilder {
    fn push(mut self, name: &str, ty: ColumnType, order: Order, nulls: Option<Nulls>) -> Self {
        self.columns.push(Column {
            name: name.to_string(),
            ty,
            order,
            nulls,
        });
        self
    }

    /// A non-nullable ascending column.
    pub fn asc(self, name: &str, ty: ColumnType) -> Self {
        self.push(name, ty, Order::Asc, None)
    }

    /// A non-nullable descending column.
    pub fn desc(self, name: &str, ty: ColumnType) -> Self {
        self.push(name, ty, Order::Desc, None)
    }

    /// A nullable column with its direction and NULL placement.
    pub fn nullable(self, name: &str, ty: ColumnType, order: Order, nulls: Nulls) -> Self {
        self.push(name, ty, order, Some(nulls))
    }

    /// The unique, non-nullable, ascending tiebreaker that must end every sort (a primary key).
    pub fn unique_asc(self, name: &str, ty: ColumnType) -> Self {
        let at = self.columns.len();
        let mut this = self.push(name, ty, Order::Asc, None);
        this.unique = Some(at);
        this
    }

    /// The unique, non-nullable, descending tiebreaker that must end every sort.
    pub fn unique_desc(self, name: &str, ty: ColumnType) -> Self {
        let at = self.columns.len();
        let mut this = self.push(name, ty, Order::Desc, None);
        this.unique = Some(at);
        this
    }

    /// Validates the sort.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSort`] if the sort has no columns, its last column is not the unique
    /// tiebreaker, or two columns share a name.
    pub fn build(self) -> Result<Sort, Error> {
        if self.columns.is_empty() {
            return Err(Error::InvalidSort {
                reason: "a sort needs at least one column".into(),
            });
        }
        if self.unique != Some(self.columns.len() - 1) {
            return Err(Error::InvalidSort {
                reason:
                    "the last column must be a unique tiebreaker (`unique_asc`/`unique_desc`), \
                         or pages can skip or repeat rows that tie on every column"
                        .into(),
            });
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|d| d.name == c.name) {
                return Err(Error::InvalidSort {
                    reason: format!("column {:?} appears twice", c.name),
                });
            }
        }
        Ok(Sort {
            columns: self.columns,
        })
    }
}

impl Sort {
    /// A builder; columns are compared in the order they are added.
    pub fn builder() -> SortBuilder {
        SortBuilder::default()
    }

    /// The columns, most significant first.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Compares two keys as rows, column by column in the sort's directions.
    ///
    /// Keys must have passed [`check`](Self::check); extra or missing values compare as equal.
    pub fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        for ((col, x), y) in self.columns.iter().zip(a).zip(b) {
            let o = col.compare(x, y);
            if o.is_ne() {
                return o;
            }
        }
        Ordering::Equal
    }

    /// Checks that `key` has one value per column, of the column's type, and NULL only in
    /// nullable columns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] saying which column is wrong.
    pub fn check(&self, key: &[Value]) -> Result<(), Error> {
        if key.len() != self.columns.len() {
            return Err(Error::InvalidKey {
                reason: format!(
                    "{} values for {} sort columns",
                    key.len(),
                    self.columns.len()
                ),
            });
        }
        for (col, v) in self.columns.iter().zip(key) {
            match v.column_type() {
                None if col.nulls.is_none() => {
                    return Err(Error::InvalidKey {
                        reason: format!("NULL in non-nullable column {:?}", col.name),
                    });
                }
                Some(ty) if ty != col.ty => {
                    return Err(Error::InvalidKey {
                        reason: format!("column {:?} is {}, got a {ty} value", col.name, col.ty),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A stable description of the sort, part of every cursor's query fingerprint.
    pub(crate) fn describe(&self, out: &mut Vec<u8>) {
        for c in &self.columns {
            out.extend_from_slice(c.name.as_bytes());
            out.push(0);
            out.push(c.ty.tag());
            out.push(match c.order {
                Order::Asc => b'a',
                Order::Desc => b'd',
            });
            out.push(match c.nulls {
                None => b'-',
                Some(Nulls::First) => b'f',
                Some(Nulls::Last) => b'l',
            });
        }
    }
}
