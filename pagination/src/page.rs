//! Pages and the keyset paging that cuts them.

use crate::cursor::{BoundCodec, Cursor};
use crate::error::Error;
use crate::request::{Direction, PageRequest};
use crate::source::Source;
use crate::value::Value;

/// One item of a page with the cursor that points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Edge<T> {
    /// The item.
    pub node: T,
    /// A cursor for paging from this item.
    pub cursor: Cursor,
}

/// Where a page sits: whether there is more in each direction, and its boundary cursors (the
/// Relay spec's `PageInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PageInfo {
    /// Whether items follow the last one of this page: exact, never a guess.
    pub has_next_page: bool,
    /// Whether items precede the first one of this page: exact, never a guess.
    pub has_previous_page: bool,
    /// The first item's cursor.
    pub start_cursor: Option<Cursor>,
    /// The last item's cursor.
    pub end_cursor: Option<Cursor>,
}

/// A page of items in sort order, with their cursors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, in sort order whichever way the request walked.
    pub edges: Vec<Edge<T>>,
    /// The page's position.
    pub page_info: PageInfo,
}

impl<T> Page<T> {
    /// The items, in sort order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.edges.iter().map(|e| &e.node)
    }

    /// The items, owned.
    pub fn into_items(self) -> Vec<T> {
        self.edges.into_iter().map(|e| e.node).collect()
    }

    /// The cursor to pass as `after` for the next page, if there is one.
    pub fn next_cursor(&self) -> Option<&Cursor> {
        self.page_info
            .end_cursor
            .as_ref()
            .filter(|_| self.page_info.has_next_page)
    }

    /// The page made of rows a database returned for a [`keyset_sql`](crate::keyset_sql) query
    /// of `request` (in the order the query returned them, up to its `limit` of one more than
    /// the page size): the extra row only says more follow, backward pages are put back in
    /// sort order, and every row gets its cursor from `key_of` (its sort key, one value per
    /// column). `more_other_way` says whether anything lies the other way (before a forward
    /// page): `false` without a cursor; with one, the answer of a one-row probe, a
    /// [`keyset_sql`](crate::keyset_sql) query the other way with a size of 1 from the row
    /// nearest the cursor (the query's first row). For an empty page, anything at the cursor
    /// or beyond it the other way counts: the cursor's own row, if it still exists, too.
    /// One key too long for a cursor ([`MAX_CURSOR_LEN`](crate::MAX_CURSOR_LEN)) fails the
    /// whole page, so keep sort values short.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_pagination::{
    ///     ColumnType, CursorCodec, Direction, Page, PageRequest, Sort, SqlOptions, Value, keyset_sql,
    /// };
    ///
    /// let sort = Sort::builder().unique_asc("id", ColumnType::Uint).build()?;
    /// let codec = CursorCodec::builder(sort.clone()).build()?;
    /// let request = PageRequest::first(2);
    /// let q = keyset_sql(&sort, None, Direction::Forward, 2, SqlOptions::default())?;
    /// assert_eq!(q.limit, 3);
    /// // What `SELECT id FROM t ORDER BY id LIMIT 3` returned:
    /// let rows = vec![1u64, 2, 3];
    /// let page = Page::from_rows(rows, &request, &codec.bind(b""), |id| vec![Value::Uint(*id)], false)?;
    /// assert_eq!(page.items().copied().collect::<Vec<_>>(), [1, 2]);
    /// assert!(page.page_info.has_next_page && !page.page_info.has_previous_page);
    /// # Ok::<(), shardkit_pagination::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if a key does not fit the codec's sort.
    pub fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        codec: &BoundCodec<'_>,
        key_of: impl Fn(&T) -> Vec<Value>,
        more_other_way: bool,
    ) -> Result<Self, Error> {
        let size = request.size() as usize;
        let more_this_way = rows.len() > size;
        rows.truncate(size);
        let direction = request.direction();
        if direction == Direction::Backward {
            rows.reverse();
        }
        let keys: Vec<Vec<Value>> = rows.iter().map(key_of).collect();
        assemble(rows, &keys, codec, direction, more_this_way, more_other_way)
    }

    /// The cursor to pass as `before` for the previous page, if there is one.
    pub fn prev_cursor(&self) -> Option<&Cursor> {
        self.page_info
            .start_cursor
            .as_ref()
            .filter(|_| self.page_info.has_previous_page)
    }
}

/// Cuts the page `request` asks for out of `source`.
///
/// It decodes the request's cursor with `codec` (which checks signature, expiry and query),
/// fetches one item more than the page size to learn exactly whether more follow, and probes
/// one item the other way to learn exactly whether more precede. Items present for a whole walk
/// are returned exactly once, in order, however the source changes between pages.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use shardkit_pagination::{ColumnType, CursorCodec, PageRequest, PageSize, Sort, paginate};
///
/// let users: BTreeMap<u64, String> = (1..=25).map(|id| (id, format!("user {id}"))).collect();
/// let sort = Sort::builder().unique_asc("id", ColumnType::Uint).build()?;
/// let codec = CursorCodec::builder(sort).signing_key(1, b"a-secret-of-sixteen+").build()?;
/// let query = codec.bind(b"");
/// let sizes = PageSize::new(10, 100)?;
///
/// let first = paginate(&users, &query, &PageRequest::from_relay(None, None, None, None, sizes)?)?;
/// assert_eq!(first.edges.len(), 10);
/// assert!(first.page_info.has_next_page && !first.page_info.has_previous_page);
///
/// let after = first.next_cursor().map(|c| c.to_string());
/// let second = paginate(&users, &query, &PageRequest::from_relay(None, after, None, None, sizes)?)?;
/// assert_eq!(second.items().next().map(|(id, _)| *id), Some(11));
/// assert!(second.page_info.has_previous_page);
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
///
/// # Errors
///
/// The cursor's decoding errors ([`Error::BadSignature`], [`Error::WrongQuery`], ...), and the
/// source's.
pub fn paginate<S: Source>(
    source: &S,
    codec: &BoundCodec<'_>,
    request: &PageRequest,
) -> Result<Page<S::Item>, Error> {
    let bound = request.cursor().map(|c| codec.decode(c)).transpose()?;
    let size = request.size() as usize;
    let direction = request.direction();
    let mut items = source.scan(bound.as_deref(), direction, size + 1)?;
    let more_this_way = items.len() > size;
    items.truncate(size);
    if direction == Direction::Backward {
        items.reverse();
    }
    let keys: Vec<_> = items.iter().map(|item| source.key(item)).collect();
    // The other way: anything beyond the page's edge item, or beyond the cursor for an empty
    // page. Without a cursor the walk started at that end, so nothing lies beyond it.
    let other_way = match direction {
        Direction::Forward => Direction::Backward,
        Direction::Backward => Direction::Forward,
    };
    let edge = match direction {
        Direction::Forward => keys.first(),
        Direction::Backward => keys.last(),
    };
    let more_other_way = match (edge, &bound) {
        (Some(k), _) => !source.scan(Some(k), other_way, 1)?.is_empty(),
        // An empty page: the cursor's own item, if it is still there, lies the other way too,
        // and a scan from the cursor would skip it. The item at this way's far end (the first
        // item, for a forward page) says whether anything lies at or before the cursor.
        (None, Some(b)) => source
            .scan(None, direction, 1)?
            .first()
            .is_some_and(|item| {
                let at = codec.sort().compare(&source.key(item), b);
                match direction {
                    Direction::Forward => at.is_le(),
                    Direction::Backward => at.is_ge(),
                }
            }),
        (None, None) => false,
    };
    assemble(
        items,
        &keys,
        codec,
        direction,
        more_this_way,
        more_other_way,
    )
}

/// A page of `items` (in sort order) whose sort keys are `keys`: each gets its cursor, and the
/// flags say what lies beyond it this way and the other.
fn assemble<T>(
    items: Vec<T>,
    keys: &[Vec<Value>],
    codec: &BoundCodec<'_>,
    direction: Direction,
    more_this_way: bool,
    more_other_way: bool,
) -> Result<Page<T>, Error> {
    let (has_next_page, has_previous_page) = match direction {
        Direction::Forward => (more_this_way, more_other_way),
        Direction::Backward => (more_other_way, more_this_way),
    };
    let edges = items
        .into_iter()
        .zip(keys)
        .map(|(node, key)| {
            Ok(Edge {
                node,
                cursor: codec.encode(key)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let page_info = PageInfo {
        has_next_page,
        has_previous_page,
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    Ok(Page { edges, page_info })
}
