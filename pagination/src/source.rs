//! Sources that can be scanned in sort order from a bound, in both directions.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::Error;
use crate::request::Direction;
use crate::sort::Sort;
use crate::value::Value;

/// The most items a scan allocates room for before it has them: a caller may ask for
/// `usize::MAX` to mean "everything".
pub(crate) const PREALLOCATE: usize = 1024;

/// Something a page can be cut from: a collection that can be scanned in its sort order, from
/// just past a key, forwards or backwards.
///
/// Implement it for a database table (an index range scan), a remote shard, or anything else
/// ordered; this crate implements it for [`BTreeMap`]s, sorted slices ([`SliceSource`]) and
/// any re-startable iterator ([`IterSource`]), and merges several into one ([`Merged`](crate::Merged)).
pub trait Source {
    /// What the source yields.
    type Item;

    /// `item`'s sort key: one value per column of the sort.
    fn key(&self, item: &Self::Item) -> Vec<Value>;

    /// Compares two items in sort order. [`Merged`](crate::Merged) orders shards' items with it;
    /// sources whose items order natively (a map's keys) avoid building keys.
    fn compare(&self, a: &Self::Item, b: &Self::Item) -> Ordering;

    /// Up to `limit` items strictly after `bound` (from the first item when `None`), in sort
    /// order, for [`Direction::Forward`]; for [`Direction::Backward`], up to `limit` items
    /// strictly before `bound` (from the last item when `None`), nearest first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if `bound` cannot be a key of this source.
    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Self::Item>, Error>;
}

/// A key type a [`BTreeMap`] source can be ordered by: its `Ord` must be the sort's order.
///
/// Implemented for integers, `String`, `Vec<u8>`, `Option<T>` (NULLS FIRST in ascending order,
/// as `Option`'s `Ord` has it), `Reverse<T>` (a descending column) and tuples of up to four.
pub trait SortKey: Ord + Clone {
    /// How many sort columns the key spans.
    const ARITY: usize;
    /// Appends the key's values, one per column.
    fn push_values(&self, out: &mut Vec<Value>);
    /// Rebuilds a key from exactly [`ARITY`](Self::ARITY) values, or `None` if they do not fit.
    fn from_values(values: &[Value]) -> Option<Self>;
}

macro_rules! scalar_key {
    ($t:ty, $variant:ident, $wide:ty) => {
        impl SortKey for $t {
            const ARITY: usize = 1;
            fn push_values(&self, out: &mut Vec<Value>) {
                out.push(Value::$variant(<$wide>::from(*self)));
            }
            fn from_values(values: &[Value]) -> Option<Self> {
                match values {
                    [Value::$variant(v)] => <$t>::try_from(*v).ok(),
                    _ => None,
                }
            }
        }
    };
}

scalar_key!(i64, Int, i64);
scalar_key!(i32, Int, i64);
scalar_key!(u64, Uint, u64);
scalar_key!(u32, Uint, u64);

/// Owned keys that clone into and out of one value variant.
macro_rules! owned_key {
    ($t:ty, $variant:ident) => {
        impl SortKey for $t {
            const ARITY: usize = 1;
            fn push_values(&self, out: &mut Vec<Value>) {
                out.push(Value::$variant(self.clone()));
            }
            fn from_values(values: &[Value]) -> Option<Self> {
                match values {
                    [Value::$variant(v)] => Some(v.clone()),
                    _ => None,
                }
            }
        }
    };
}

owned_key!(String, Text);
owned_key!(Vec<u8>, Bytes);

impl<T: SortKey> SortKey for Reverse<T> {
    const ARITY: usize = T::ARITY;
    fn push_values(&self, out: &mut Vec<Value>) {
        self.0.push_values(out);
    }
    fn from_values(values: &[Value]) -> Option<Self> {
        T::from_values(values).map(Reverse)
    }
}

impl<T: SortKey> SortKey for Option<T> {
    const ARITY: usize = T::ARITY;
    fn push_values(&self, out: &mut Vec<Value>) {
        match self {
            Some(v) => v.push_values(out),
            None => out.extend((0..T::ARITY).map(|_| Value::Null)),
        }
    }
    fn from_values(values: &[Value]) -> Option<Self> {
        if values.iter().all(|v| *v == Value::Null) {
            Some(None)
        } else {
            T::from_values(values).map(Some)
        }
    }
}

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: SortKey),+> SortKey for ($($name,)+) {
            const ARITY: usize = 0 $(+ $name::ARITY)+;
            #[allow(non_snake_case)]
            fn push_values(&self, out: &mut Vec<Value>) {
                let ($($name,)+) = self;
                $($name.push_values(out);)+
            }
            #[allow(unused_assignments, reason = "the last part's offset update is unused")]
            fn from_values(values: &[Value]) -> Option<Self> {
                if values.len() != Self::ARITY {
                    return None;
                }
                let mut at = 0;
                Some(($({
                    let part = $name::from_values(&values[at..at + $name::ARITY])?;
                    at += $name::ARITY;
                    part
                },)+))
            }
        }
    };
}

tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

fn bound_key<K: SortKey>(bound: &[Value]) -> Result<K, Error> {
    K::from_values(bound).ok_or_else(|| Error::InvalidKey {
        reason: format!("{} values do not form this map's key", bound.len()),
    })
}

/// A map is a source ordered by its keys; items are `(key, value)` pairs, cloned.
impl<K: SortKey, V: Clone> Source for BTreeMap<K, V> {
    type Item = (K, V);

    fn key(&self, item: &(K, V)) -> Vec<Value> {
        let mut out = Vec::with_capacity(K::ARITY);
        item.0.push_values(&mut out);
        out
    }

    fn compare(&self, a: &(K, V), b: &(K, V)) -> Ordering {
        a.0.cmp(&b.0)
    }

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<(K, V)>, Error> {
        let bound = bound.map(bound_key::<K>).transpose()?;
        let clone = |(k, v): (&K, &V)| (k.clone(), v.clone());
        Ok(match (direction, bound) {
            (Direction::Forward, None) => self.iter().take(limit).map(clone).collect(),
            (Direction::Forward, Some(k)) => self
                .range((Bound::Excluded(k), Bound::Unbounded))
                .take(limit)
                .map(clone)
                .collect(),
            (Direction::Backward, None) => self.iter().rev().take(limit).map(clone).collect(),
            (Direction::Backward, Some(k)) => {
                self.range(..k).rev().take(limit).map(clone).collect()
            }
        })
    }
}

/// A slice already sorted by a [`Sort`], with a function giving each item's key; scans are
/// binary searches.
///
/// # Examples
///
/// ```
/// use shardkit_pagination::{ColumnType, Direction, SliceSource, Sort, Source, Value};
///
/// let rows = [(1, "a"), (2, "b"), (3, "c")];
/// let sort = Sort::builder().unique_asc("id", ColumnType::Int).build()?;
/// let source = SliceSource::new(&rows, sort, |r: &(i64, &str)| vec![Value::Int(r.0)]);
/// let after_1 = source.scan(Some(&[Value::Int(1)]), Direction::Forward, 10)?;
/// assert_eq!(after_1, [(2, "b"), (3, "c")]);
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SliceSource<'a, T, F> {
    items: &'a [T],
    sort: Sort,
    key: F,
}

impl<'a, T, F: Fn(&T) -> Vec<Value>> SliceSource<'a, T, F> {
    /// A source over `items`, which must be sorted by `sort` under `key`.
    pub fn new(items: &'a [T], sort: Sort, key: F) -> Self {
        Self { items, sort, key }
    }

    /// How many items sort before `bound` (`Less`) or before-or-at it (`Equal`).
    fn count_below(&self, bound: &[Value], inclusive: bool) -> usize {
        self.items.partition_point(|t| {
            let o = self.sort.compare(&(self.key)(t), bound);
            o == Ordering::Less || (inclusive && o == Ordering::Equal)
        })
    }
}

impl<T: Clone, F: Fn(&T) -> Vec<Value>> Source for SliceSource<'_, T, F> {
    type Item = T;

    fn key(&self, item: &T) -> Vec<Value> {
        (self.key)(item)
    }

    fn compare(&self, a: &T, b: &T) -> Ordering {
        self.sort.compare(&(self.key)(a), &(self.key)(b))
    }

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<T>, Error> {
        if let Some(b) = bound {
            self.sort.check(b)?;
        }
        Ok(match direction {
            Direction::Forward => {
                let start = bound.map_or(0, |b| self.count_below(b, true));
                self.items[start..].iter().take(limit).cloned().collect()
            }
            Direction::Backward => {
                let end = bound.map_or(self.items.len(), |b| self.count_below(b, false));
                self.items[..end]
                    .iter()
                    .rev()
                    .take(limit)
                    .cloned()
                    .collect()
            }
        })
    }
}

/// Any collection that can be iterated in sort order again and again (a file, a generator):
/// scans walk from the start, so each costs O(position). Prefer [`SliceSource`] or an indexed
/// source for deep pages.
#[derive(Debug, Clone)]
pub struct IterSource<M, F> {
    make: M,
    sort: Sort,
    key: F,
}

impl<M, F> IterSource<M, F> {
    /// A source whose items `make()` yields in `sort` order under `key`.
    pub fn new(make: M, sort: Sort, key: F) -> Self {
        Self { make, sort, key }
    }
}

impl<M, I, F> Source for IterSource<M, F>
where
    M: Fn() -> I,
    I: Iterator,
    F: Fn(&I::Item) -> Vec<Value>,
{
    type Item = I::Item;

    fn key(&self, item: &I::Item) -> Vec<Value> {
        (self.key)(item)
    }

    fn compare(&self, a: &I::Item, b: &I::Item) -> Ordering {
        self.sort.compare(&(self.key)(a), &(self.key)(b))
    }

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<I::Item>, Error> {
        if let Some(b) = bound {
            self.sort.check(b)?;
        }
        let cmp = |item: &I::Item| bound.map(|b| self.sort.compare(&(self.key)(item), b));
        Ok(match direction {
            Direction::Forward => (self.make)()
                .skip_while(|item| cmp(item).is_some_and(Ordering::is_le))
                .take(limit)
                .collect(),
            Direction::Backward => {
                let mut window =
                    std::collections::VecDeque::with_capacity(limit.min(PREALLOCATE) + 1);
                for item in (self.make)().take_while(|item| cmp(item).is_none_or(Ordering::is_lt)) {
                    window.push_back(item);
                    if window.len() > limit {
                        window.pop_front();
                    }
                }
                window.into_iter().rev().collect()
            }
        })
    }
}
