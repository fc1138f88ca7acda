//! Keyset (cursor) pagination for APIs that return large results: opaque cursors bound to
//! their query (tamper-proof when signed), exact `has_next_page`/`has_previous_page`, pages merged across
//! shards, SQL keyset queries for real databases, and `Link` headers.
//!
//! Offset paging (`LIMIT 10 OFFSET 90000`) gets slower with every page and skips or repeats rows
//! when data changes underneath; keyset paging ("the 10 rows after this key") costs the same on
//! every page and is stable. This crate makes the usual mistakes impossible or loud: a sort
//! without a unique tiebreaker is refused when built; keys compare as rows, in each column's
//! direction, with NULLs placed explicitly; a short page is never taken as the end (one extra
//! row is fetched); cursors are signed, can expire, and are rejected when replayed with other
//! filters; a client's garbage cursor is a typed error, never a panic.
//!
//! ```
//! use std::collections::BTreeMap;
//! use shardkit_pagination::{ColumnType, CursorCodec, PageRequest, PageSize, Sort, paginate};
//!
//! let orders: BTreeMap<u64, &str> = (1..=95).map(|id| (id, "order")).collect();
//! let sort = Sort::builder().unique_asc("id", ColumnType::Uint).build()?;
//! let codec = CursorCodec::builder(sort).signing_key(1, b"sixteen-byte-key!").build()?;
//! let query = codec.bind(b"status=open"); // the request's filters
//! let sizes = PageSize::new(20, 100)?;
//!
//! // Walk forwards through every page, as a client following `next` links would.
//! let (mut after, mut seen) = (None, 0);
//! loop {
//!     let request = PageRequest::from_relay(Some(20), after.take(), None, None, sizes)?;
//!     let page = paginate(&orders, &query, &request)?;
//!     seen += page.edges.len();
//!     match page.next_cursor() {
//!         Some(cursor) => after = Some(cursor.to_string()),
//!         None => break,
//!     }
//! }
//! assert_eq!(seen, 95);
//!
//! // Backwards from the end (`last`/`before`): pages still list items in sort order.
//! let request = PageRequest::from_relay(None, None, Some(20), None, sizes)?;
//! let last = paginate(&orders, &query, &request)?;
//! let ids: Vec<u64> = last.items().map(|(id, _)| *id).collect();
//! assert_eq!(ids, (76..=95).collect::<Vec<_>>());
//! assert!(last.page_info.has_previous_page && !last.page_info.has_next_page);
//! let before = last.prev_cursor().map(|c| c.to_string());
//! let earlier = paginate(&orders, &query, &PageRequest::from_relay(None, None, Some(20), before, sizes)?)?;
//! assert_eq!(earlier.items().next().map(|(id, _)| *id), Some(56));
//! # Ok::<(), shardkit_pagination::Error>(())
//! ```
//!
//! # The pieces
//!
//! - [`PageRequest`] and [`PageSize`]: Relay/AIP-158/Stripe-style requests (`first`/`after`,
//!   `last`/`before`), sizes coerced to a maximum, zero or negative refused.
//! - [`Sort`]: columns of [`Value`]s (integers, text, bytes, timestamps, UUIDs, nullable with
//!   NULLS FIRST/LAST), ascending, descending or mixed, ending in a unique tiebreaker.
//! - [`CursorCodec`]: compact URL-safe tokens, versioned, optionally signed (HMAC-SHA256 with
//!   key rotation) or encrypted (feature `encryption`), optionally expiring, bound to the query
//!   ([`CursorCodec::bind`]).
//! - [`Source`] and [`paginate`]: keyset pages over a [`BTreeMap`](std::collections::BTreeMap),
//!   a sorted slice ([`SliceSource`]), any re-startable iterator ([`IterSource`]), or several
//!   shards merged into one ([`Merged`]).
//! - [`keyset_sql`]: the `WHERE`/`ORDER BY`/`LIMIT` of a page query for real databases, with
//!   bound parameters, in row-value or expanded form.
//! - [`link_header`]: RFC 8288 `Link` headers.
//!
//! # Guarantees
//!
//! - Every item present for a whole walk is returned exactly once, in order, forwards or
//!   backwards, however items are inserted or deleted between pages (property-tested).
//! - `has_next_page` and `has_previous_page` are exact: one extra item is fetched in the walk's
//!   direction and one probed the other way.
//! - With signing on, any change to a token is rejected; decoding never panics
//!   (property-tested on random input and on valid tokens damaged past their header).
//! - Signed cursors are base64, not encrypted: a client can read the sort values they hold
//!   (an email address, a creation time) unless the codec encrypts them (`CodecBuilder::encrypt`,
//!   feature `encryption`). Bind each
//!   endpoint's cursors to its name too ([`CursorCodec::bind`]), or two endpoints with the same
//!   sort, key and filters accept each other's cursors.
//!
//! # Features
//!
//! - `serde`: `Serialize`/`Deserialize` for [`Page`], [`Edge`], [`PageInfo`], [`Cursor`] and
//!   [`Value`].
//! - `encryption`: `CodecBuilder::encrypt`, cursors whose contents clients cannot read
//!   (AES-SIV, RFC 5297, under keys derived from the signing keys with HKDF-SHA256; adds the
//!   `aes-siv` and `hkdf` dependencies). Builds without it refuse encrypted cursors: with
//!   [`Error::MalformedCursor`] once the key id and the query match (before that, as any
//!   cursor, with [`Error::BadSignature`] or [`Error::WrongQuery`]).
//!
//! The minimum supported Rust version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cursor;
mod error;
mod link;
mod merge;
mod page;
mod request;
mod sealing;
mod sort;
mod source;
mod sql;
mod value;

pub use cursor::{
    BoundCodec, CURSOR_VERSION, CodecBuilder, Cursor, CursorCodec, MAX_CURSOR_LEN, MIN_KEY_LEN,
};
pub use error::Error;
pub use link::link_header;
pub use merge::Merged;
pub use page::{Edge, Page, PageInfo, paginate};
pub use request::{Direction, PageRequest, PageSize};
pub use sort::{Column, Nulls, Order, Sort, SortBuilder};
pub use source::{IterSource, SliceSource, SortKey, Source};
pub use sql::{KeysetSql, Placeholders, SqlOptions, keyset_sql};
pub use value::{ColumnType, Value};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
