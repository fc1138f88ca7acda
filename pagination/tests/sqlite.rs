//! The keyset SQL helper against a real database: an embedded SQLite with a multi-column index.
//! Walking all pages returns every row once, in order, for ascending, descending and mixed
//! sorts, forwards and backwards, with duplicate leading values and with NULLs, alone and
//! after the query's own filters.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use shardkit_pagination::{
    ColumnType, CursorCodec, Direction, Nulls, Order, Page, PageRequest, PageSize, Sort,
    SqlOptions, Value, keyset_sql,
};

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) | Value::Timestamp(i) => SqlValue::Integer(*i),
        Value::Uint(u) => SqlValue::Integer(i64::try_from(*u).expect("test ids fit i64")),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
        Value::Uuid(u) => SqlValue::Blob(u.to_vec()),
    }
}

fn from_sql(v: SqlValue, ty: ColumnType) -> Value {
    match (v, ty) {
        (SqlValue::Null, _) => Value::Null,
        (SqlValue::Integer(i), ColumnType::Int) => Value::Int(i),
        (SqlValue::Integer(i), ColumnType::Uint) => Value::Uint(i as u64),
        (SqlValue::Text(s), ColumnType::Text) => Value::Text(s),
        (v, ty) => panic!("unexpected {v:?} for {ty:?}"),
    }
}

fn database() -> Connection {
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE items (grp INTEGER NOT NULL, name TEXT NOT NULL, tag TEXT, id INTEGER PRIMARY KEY);
         CREATE INDEX items_keyset ON items (grp, name, id);",
    )
    .unwrap();
    let mut insert = db
        .prepare("INSERT INTO items (grp, name, tag, id) VALUES (?1, ?2, ?3, ?4)")
        .unwrap();
    for id in 0..500i64 {
        // Few groups and names, so leading values repeat many times; a third of tags are NULL.
        let tag = (id % 3 != 0).then(|| format!("t{}", id % 5));
        insert
            .execute(rusqlite::params![id % 4, format!("n{}", id % 7), tag, id])
            .unwrap();
    }
    drop(insert);
    db
}

/// Every row's key that passes `filter`, in the sort's order, as the database orders it with
/// no keyset condition.
fn all_keys(db: &Connection, sort: &Sort, filter: Option<&str>) -> Vec<Vec<Value>> {
    let options = SqlOptions::default();
    let rows = raw_rows(db, sort, filter, None, Direction::Forward, 100_000, options);
    in_order(rows, 100_000).0
}

fn columns(sort: &Sort) -> String {
    sort.columns()
        .iter()
        .map(|c| format!("\"{}\"", c.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows the database returns for `keyset_sql`'s query (in its order, up to its limit),
/// of the rows that pass `filter` (spliced before the keyset condition with `AND`, as the docs
/// say to), and whether they come back reversed.
fn raw_rows(
    db: &Connection,
    sort: &Sort,
    filter: Option<&str>,
    bound: Option<&[Value]>,
    direction: Direction,
    size: u32,
    options: SqlOptions,
) -> (Vec<Vec<Value>>, bool) {
    let q = keyset_sql(sort, bound, direction, size, options).unwrap();
    let filter = match (filter, q.where_clause) {
        (Some(f), Some(w)) => format!(" WHERE {f} AND {w}"),
        (Some(f), None) => format!(" WHERE {f}"),
        (None, Some(w)) => format!(" WHERE {w}"),
        (None, None) => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM items{filter} ORDER BY {} LIMIT {}",
        columns(sort),
        q.order_by,
        q.limit
    );
    let mut stmt = db.prepare(&sql).unwrap();
    let rows = stmt
        .query_map(params_from_iter(q.params.iter().map(to_sql)), |row| {
            Ok(sort
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| from_sql(row.get::<_, SqlValue>(i).unwrap(), c.column_type()))
                .collect())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (rows, q.reverse_rows)
}

/// A page of `size` from what [`raw_rows`] returned: its keys in sort order, and whether more
/// rows lie beyond it.
fn in_order((mut rows, reversed): (Vec<Vec<Value>>, bool), size: u32) -> (Vec<Vec<Value>>, bool) {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    if reversed {
        rows.reverse();
    }
    (rows, more)
}

fn walk_all(
    db: &Connection,
    sort: &Sort,
    filter: Option<&str>,
    size: u32,
    forward: bool,
    options: SqlOptions,
) {
    let expected = all_keys(db, sort, filter);
    match filter {
        None => assert_eq!(expected.len(), 500),
        Some(f) => assert!((1..500).contains(&expected.len()), "{f} filters no row"),
    }
    for w in expected.windows(2) {
        assert!(
            sort.compare(&w[0], &w[1]).is_lt(),
            "the database and the sort disagree: {w:?}"
        );
    }
    let direction = if forward {
        Direction::Forward
    } else {
        Direction::Backward
    };
    let mut got: Vec<Vec<Value>> = Vec::new();
    let mut bound: Option<Vec<Value>> = None;
    loop {
        let raw = raw_rows(db, sort, filter, bound.as_deref(), direction, size, options);
        let (rows, more) = in_order(raw, size);
        bound = if forward {
            rows.last().cloned()
        } else {
            rows.first().cloned()
        };
        if forward {
            got.extend(rows);
        } else {
            got.splice(0..0, rows);
        }
        if !more {
            break;
        }
    }
    assert_eq!(
        got, expected,
        "walk of {sort:?} filtered by {filter:?} forward={forward} size={size}"
    );
}

#[test]
fn every_row_once_in_order_for_all_sort_shapes() {
    let db = database();
    let sorts = [
        Sort::builder()
            .asc("grp", ColumnType::Int)
            .asc("name", ColumnType::Text)
            .unique_asc("id", ColumnType::Uint),
        Sort::builder()
            .desc("grp", ColumnType::Int)
            .desc("name", ColumnType::Text)
            .unique_desc("id", ColumnType::Uint),
        Sort::builder()
            .desc("grp", ColumnType::Int)
            .asc("name", ColumnType::Text)
            .unique_desc("id", ColumnType::Uint),
        Sort::builder()
            .nullable("tag", ColumnType::Text, Order::Asc, Nulls::Last)
            .unique_asc("id", ColumnType::Uint),
        Sort::builder()
            .asc("grp", ColumnType::Int)
            .nullable("tag", ColumnType::Text, Order::Desc, Nulls::First)
            .unique_desc("id", ColumnType::Uint),
    ];
    for sort in sorts {
        let sort = sort.build().unwrap();
        for size in [1, 7, 64] {
            for forward in [true, false] {
                for row_values in [true, false] {
                    let options = SqlOptions::default().row_values(row_values);
                    // A filter on a column after the leading one: a keyset condition that
                    // did not hold together after `AND` would let its rows through.
                    for filter in [None, Some(r#""name" <> 'n3'"#)] {
                        walk_all(&db, &sort, filter, size, forward, options);
                    }
                }
            }
        }
    }
}

#[test]
fn values_are_bound_never_spliced() {
    let sort = Sort::builder()
        .asc("name", ColumnType::Text)
        .unique_asc("id", ColumnType::Uint)
        .build()
        .unwrap();
    let hostile = [
        Value::Text("x'); DROP TABLE items; --".into()),
        Value::Uint(1),
    ];
    let q = keyset_sql(
        &sort,
        Some(&hostile),
        Direction::Forward,
        10,
        SqlOptions::default(),
    )
    .unwrap();
    let text = q.where_clause.unwrap();
    assert!(!text.contains("DROP"), "{text}");
    assert_eq!(q.params[0], hostile[0]);
}

#[test]
fn numbered_placeholders_continue_after_the_filters() {
    let sort = Sort::builder()
        .desc("grp", ColumnType::Int)
        .unique_asc("id", ColumnType::Uint)
        .build()
        .unwrap();
    let options = SqlOptions::default().numbered_from(3);
    let q = keyset_sql(
        &sort,
        Some(&[Value::Int(1), Value::Uint(2)]),
        Direction::Forward,
        5,
        options,
    )
    .unwrap();
    assert_eq!(
        q.where_clause.as_deref(),
        Some(r#"(("grp" < $3) OR ("grp" = $4 AND "id" > $5))"#)
    );
}

/// `Page::from_rows` turns what the database returned into a page with cursors and exact
/// flags (the other way from a one-row probe): walking forwards, then backwards from the end,
/// returns every row once, in order.
#[test]
fn pages_from_database_rows_walk_the_table_both_ways() {
    let db = database();
    let sort = Sort::builder()
        .desc("grp", ColumnType::Int)
        .asc("name", ColumnType::Text)
        .unique_asc("id", ColumnType::Uint)
        .build()
        .unwrap();
    let codec = CursorCodec::builder(sort.clone())
        .signing_key(1, b"0123456789abcdef")
        .build()
        .unwrap();
    let query = codec.bind(b"items");
    let expected = all_keys(&db, &sort, None);
    let sizes = PageSize::new(7, 7).unwrap();
    let options = SqlOptions::default();
    for forward in [true, false] {
        let (direction, other) = if forward {
            (Direction::Forward, Direction::Backward)
        } else {
            (Direction::Backward, Direction::Forward)
        };
        let mut cursor: Option<String> = None;
        let mut got: Vec<Vec<Value>> = Vec::new();
        loop {
            let request = if forward {
                PageRequest::from_relay(Some(7), cursor.clone(), None, None, sizes)
            } else {
                PageRequest::from_relay(None, None, Some(7), cursor.clone(), sizes)
            }
            .unwrap();
            let bound = cursor.as_deref().map(|c| query.decode(c).unwrap());
            let (rows, _) = raw_rows(&db, &sort, None, bound.as_deref(), direction, 7, options);
            // The probe the other way, from the row nearest the cursor (the query's first).
            let edge = rows.first().expect("no page of this walk is empty");
            let (probe, _) = raw_rows(&db, &sort, None, Some(edge), other, 1, options);
            let more_other_way = !probe.is_empty();
            assert_eq!(
                more_other_way,
                bound.is_some(),
                "the first page has nothing before it"
            );
            let page =
                Page::from_rows(rows, &request, &query, Clone::clone, more_other_way).unwrap();
            let items: Vec<Vec<Value>> = page.items().cloned().collect();
            if forward {
                got.extend(items);
                cursor = page.next_cursor().map(ToString::to_string);
            } else {
                got.splice(0..0, items);
                cursor = page.prev_cursor().map(ToString::to_string);
            }
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(got, expected, "forward={forward}");
    }
}
