//! Keyset SQL: the `WHERE`, `ORDER BY` and `LIMIT` of a page query, with bound parameters.

use std::fmt::Write as _;

use crate::error::Error;
use crate::request::Direction;
use crate::sort::{Nulls, Order, Sort};
use crate::value::Value;

/// How parameters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Placeholders {
    /// `?` (SQLite, MySQL).
    #[default]
    Question,
    /// `$1`, `$2`, ... (PostgreSQL), numbered from [`SqlOptions::first_param`].
    Numbered,
}

/// Options of [`keyset_sql`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlOptions {
    /// The placeholder style.
    pub placeholders: Placeholders,
    /// The number of the first numbered placeholder, after the query's own filter parameters.
    pub first_param: usize,
    /// Use a row-value comparison `(a, b) > (?, ?)` when every column has the same direction
    /// and none is nullable (an index range scan in PostgreSQL, SQLite and MySQL); off, or
    /// otherwise, the expanded `(a > ? OR (a = ? AND b > ?))` form, which every database runs.
    pub row_values: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            placeholders: Placeholders::Question,
            first_param: 1,
            row_values: true,
        }
    }
}

impl SqlOptions {
    /// `$n` placeholders numbered from `first` (PostgreSQL), after the query's own parameters.
    #[must_use]
    pub fn numbered_from(mut self, first: usize) -> Self {
        self.placeholders = Placeholders::Numbered;
        self.first_param = first;
        self
    }

    /// Whether to use a row-value comparison where the sort allows it.
    #[must_use]
    pub fn row_values(mut self, on: bool) -> Self {
        self.row_values = on;
        self
    }
}

/// The keyset parts of a page query; splice them into `SELECT ... FROM t WHERE <filters> AND
/// <where_clause> ORDER BY <order_by> LIMIT <limit>`, binding `params` in order. The condition
/// is one bracketed term, so it can follow an `AND` as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysetSql {
    /// The keyset condition, `None` for the first page (no cursor).
    pub where_clause: Option<String>,
    /// The `ORDER BY` list: the sort's, reversed for backward pages.
    pub order_by: String,
    /// One more than the page size, so the page knows exactly whether more rows follow.
    pub limit: usize,
    /// The values to bind, in placeholder order. Never spliced into the SQL text.
    pub params: Vec<Value>,
    /// Whether the rows come back in reverse sort order (backward pages) and must be reversed.
    pub reverse_rows: bool,
}

/// `"name"`, with embedded quotes doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

struct Params {
    style: Placeholders,
    next: usize,
    values: Vec<Value>,
}

impl Params {
    fn bind(&mut self, v: &Value) -> String {
        self.values.push(v.clone());
        match self.style {
            Placeholders::Question => "?".into(),
            Placeholders::Numbered => {
                self.next += 1;
                format!("${}", self.next - 1)
            }
        }
    }
}

/// Builds the keyset condition and ordering for the page after (forward) or before (backward)
/// `bound`, a decoded cursor, in `sort`.
///
/// NULLs are handled explicitly (`IS NULL` / `IS NOT NULL` terms, `NULLS FIRST/LAST` in the
/// ordering), so rows with NULL keys are never silently dropped. `NULLS FIRST/LAST` is
/// standard SQL (PostgreSQL, SQLite, Oracle), which MySQL, MariaDB and SQL Server do not parse:
/// there, keep nullable columns out of the sort. Column
/// names are quoted with double quotes (standard SQL; MySQL needs `ANSI_QUOTES`).
///
/// # Examples
///
/// ```
/// use shardkit_pagination::{ColumnType, Direction, Sort, SqlOptions, Value, keyset_sql};
///
/// let sort = Sort::builder()
///     .desc("created_at", ColumnType::Timestamp)
///     .unique_asc("id", ColumnType::Uint)
///     .build()?;
/// let cursor = [Value::Timestamp(1_000), Value::Uint(7)];
/// let q = keyset_sql(&sort, Some(&cursor), Direction::Forward, 20, SqlOptions::default())?;
/// assert_eq!(
///     q.where_clause.as_deref(),
///     Some(r#"(("created_at" < ?) OR ("created_at" = ? AND "id" > ?))"#)
/// );
/// assert_eq!(q.order_by, r#""created_at" DESC, "id" ASC"#);
/// assert_eq!(q.limit, 21);
/// assert_eq!(q.params.len(), 3);
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidKey`] if `bound` does not fit the sort.
pub fn keyset_sql(
    sort: &Sort,
    bound: Option<&[Value]>,
    direction: Direction,
    size: u32,
    options: SqlOptions,
) -> Result<KeysetSql, Error> {
    let forward = direction == Direction::Forward;
    let mut params = Params {
        style: options.placeholders,
        next: options.first_param,
        values: Vec::new(),
    };
    let where_clause = match bound {
        None => None,
        Some(bound) => {
            sort.check(bound)?;
            Some(condition(
                sort,
                bound,
                forward,
                options.row_values,
                &mut params,
            ))
        }
    };
    let mut order_by = String::new();
    for (i, col) in sort.columns().iter().enumerate() {
        let ascending = (col.order() == Order::Asc) == forward;
        let _ = write!(
            order_by,
            "{}{} {}",
            if i > 0 { ", " } else { "" },
            quote(col.name()),
            if ascending { "ASC" } else { "DESC" }
        );
        if let Some(nulls) = col.nulls() {
            let first = (nulls == Nulls::First) == forward;
            order_by.push_str(if first { " NULLS FIRST" } else { " NULLS LAST" });
        }
    }
    Ok(KeysetSql {
        where_clause,
        order_by,
        limit: size as usize + 1,
        params: params.values,
        reverse_rows: !forward,
    })
}

fn condition(
    sort: &Sort,
    bound: &[Value],
    forward: bool,
    row_values: bool,
    params: &mut Params,
) -> String {
    let columns = sort.columns();
    let same_order = columns.iter().all(|c| c.order() == columns[0].order());
    if row_values && same_order && columns.iter().all(|c| c.nulls().is_none()) && columns.len() > 1
    {
        let greater = (columns[0].order() == Order::Asc) == forward;
        let names: Vec<String> = columns.iter().map(|c| quote(c.name())).collect();
        let marks: Vec<String> = bound.iter().map(|v| params.bind(v)).collect();
        return format!(
            "({}) {} ({})",
            names.join(", "),
            if greater { ">" } else { "<" },
            marks.join(", ")
        );
    }
    let mut disjuncts = Vec::new();
    for (i, (col, v)) in columns.iter().zip(bound).enumerate() {
        // Whether any row lies past `v` in this column, in the walk's direction.
        let non_nulls_beyond_null = (col.nulls() == Some(Nulls::First)) == forward;
        if *v == Value::Null && !non_nulls_beyond_null {
            continue;
        }
        // Placeholders are bound in the order they appear in the text: equalities first.
        let mut terms = Vec::with_capacity(i + 1);
        for (prev, pv) in columns[..i].iter().zip(bound) {
            let prev_name = quote(prev.name());
            terms.push(match pv {
                Value::Null => format!("{prev_name} IS NULL"),
                _ => format!("{prev_name} = {}", params.bind(pv)),
            });
        }
        let name = quote(col.name());
        terms.push(if *v == Value::Null {
            format!("{name} IS NOT NULL")
        } else {
            let greater = (col.order() == Order::Asc) == forward;
            let op = if greater { ">" } else { "<" };
            let nulls_beyond = col.nulls().is_some_and(|n| (n == Nulls::Last) == forward);
            let mark = params.bind(v);
            if nulls_beyond {
                format!("({name} {op} {mark} OR {name} IS NULL)")
            } else {
                format!("{name} {op} {mark}")
            }
        });
        disjuncts.push(format!("({})", terms.join(" AND ")));
    }
    match disjuncts.len() {
        0 => "1 = 0".into(),
        1 => disjuncts.remove(0),
        // Bracketed: spliced after `<filters> AND`, a bare `OR` would bind looser than the
        // `AND` and let rows the filters exclude through.
        _ => format!("({})", disjuncts.join(" OR ")),
    }
}
