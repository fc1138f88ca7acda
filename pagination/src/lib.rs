//! Cursor pagination for APIs that return large results: page requests that follow the
//! conventions clients know (the Relay connections spec, Google's AIP-158, Stripe's list API),
//! with page sizes that are coerced to a maximum rather than refused, and clear errors for
//! requests that make no sense.
//!
//! ```
//! use shardkit_pagination::{Direction, Error, PageRequest, PageSize};
//!
//! let sizes = PageSize::new(20, 100)?; // default 20, at most 100
//!
//! // GET /items?first=500&after=abc  → forwards, coerced to 100.
//! let req = PageRequest::from_relay(Some(500), Some("abc".into()), None, None, sizes)?;
//! assert_eq!(req.direction(), Direction::Forward);
//! assert_eq!(req.size(), 100);
//! assert_eq!(req.cursor(), Some("abc"));
//!
//! // GET /items  → the first page at the default size.
//! let first = PageRequest::from_relay(None, None, None, None, sizes)?;
//! assert_eq!((first.size(), first.cursor()), (20, None));
//!
//! // Zero, negative, or both directions at once are errors the API can return as a 400.
//! assert_eq!(sizes.resolve(Some(0)), Err(Error::InvalidPageSize(0)));
//! assert!(PageRequest::from_relay(Some(5), None, Some(5), None, sizes).is_err());
//! # Ok::<(), Error>(())
//! ```
//!
//! # Status
//!
//! This release ships page requests and size policies. Opaque signed cursors, keyset paging
//! over sources, merged paging across shards and the SQL helper are being built on them.
//!
//! The minimum supported Rust version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod request;

pub use error::Error;
pub use request::{Direction, PageRequest, PageSize};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
