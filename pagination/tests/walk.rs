//! Walking every page returns every item present throughout exactly once, in order, forwards and
//! backwards, while items are inserted and deleted between pages; the has-next/has-previous
//! flags are exact at every page. Checked for a map, a sorted slice and shards merged.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shardkit_pagination::{
    BoundCodec, ColumnType, CursorCodec, Merged, Page, PageRequest, PageSize, SliceSource, Sort,
    Value, paginate,
};

fn sort() -> Sort {
    Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Change {
    Insert(u64),
    Delete(prop::sample::Index),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u64..400).prop_map(Change::Insert),
        any::<prop::sample::Index>().prop_map(Change::Delete)
    ]
}

/// How the walk reads the current data: directly, as a slice, or split over shards.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Map,
    Slice,
    Shards(usize),
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Map),
        Just(Layout::Slice),
        (1usize..6).prop_map(Layout::Shards)
    ]
}

/// What a client sees of a page.
struct Seen {
    ids: Vec<u64>,
    has_next: bool,
    has_prev: bool,
    next: Option<String>,
    prev: Option<String>,
}

fn seen(page: Page<(u64, u64)>) -> Seen {
    Seen {
        ids: page.items().map(|(k, _)| *k).collect(),
        has_next: page.page_info.has_next_page,
        has_prev: page.page_info.has_previous_page,
        next: page.next_cursor().map(ToString::to_string),
        prev: page.prev_cursor().map(ToString::to_string),
    }
}

fn fetch(
    data: &BTreeMap<u64, u64>,
    layout: Layout,
    query: &BoundCodec<'_>,
    req: &PageRequest,
) -> Seen {
    match layout {
        Layout::Map => seen(paginate(data, query, req).unwrap()),
        Layout::Slice => {
            let rows: Vec<(u64, u64)> = data.iter().map(|(k, v)| (*k, *v)).collect();
            let source = SliceSource::new(&rows, sort(), |r: &(u64, u64)| vec![Value::Uint(r.0)]);
            seen(paginate(&source, query, req).unwrap())
        }
        Layout::Shards(n) => {
            let mut shards = vec![BTreeMap::new(); n];
            for (k, v) in data {
                shards[(k * 7 % n as u64) as usize].insert(*k, *v);
            }
            seen(paginate(&Merged::new(shards, sort()), query, req).unwrap())
        }
    }
}

/// Walks the whole collection one way, applying `changes` between pages, and checks the walk.
fn walk(
    initial: &BTreeSet<u64>,
    size: i64,
    changes: &[Vec<Change>],
    forward: bool,
    layout: Layout,
) -> Result<(), TestCaseError> {
    let codec = CursorCodec::builder(sort())
        .signing_key(1, b"0123456789abcdef")
        .build()
        .unwrap();
    let query = codec.bind(b"walk");
    let sizes = PageSize::new(10, 50).unwrap();
    let mut data: BTreeMap<u64, u64> = initial.iter().map(|&k| (k, k * 10)).collect();
    let mut removed: BTreeSet<u64> = BTreeSet::new();
    let mut returned: Vec<u64> = Vec::new();
    let mut cursor: Option<String> = None;
    for step in 0.. {
        // The item the cursor points at, which may have been deleted since.
        let at = cursor
            .as_deref()
            .map(|c| match query.decode(c).unwrap()[..] {
                [Value::Uint(k)] => k,
                ref key => panic!("not this sort's key: {key:?}"),
            });
        let req = if forward {
            PageRequest::from_relay(Some(size), cursor.take(), None, None, sizes)
        } else {
            PageRequest::from_relay(None, None, Some(size), cursor.take(), sizes)
        }
        .unwrap();
        let page = fetch(&data, layout, &query, &req);
        prop_assert!(page.ids.len() <= size.min(50) as usize);
        prop_assert!(
            page.ids.windows(2).all(|w| w[0] < w[1]),
            "page out of order: {:?}",
            page.ids
        );
        // The flags are exact against the data as it is now.
        if let (Some(first), Some(last)) = (page.ids.first(), page.ids.last()) {
            prop_assert_eq!(page.has_next, data.range(last + 1..).next().is_some());
            prop_assert_eq!(page.has_prev, data.range(..first).next().is_some());
        } else if let Some(at) = at {
            // An empty page: everything lies the other way, the cursor's item included.
            let (this_way, other_way) = if forward {
                (page.has_next, page.has_prev)
            } else {
                (page.has_prev, page.has_next)
            };
            let beyond = if forward {
                data.range(..=at).next()
            } else {
                data.range(at..).next()
            };
            prop_assert!(!this_way);
            prop_assert_eq!(other_way, beyond.is_some(), "empty page at {}", at);
        }
        if forward {
            returned.extend(&page.ids);
        } else {
            returned.splice(0..0, page.ids.iter().copied());
        }
        cursor = if forward { page.next } else { page.prev };
        if cursor.is_none() {
            break;
        }
        prop_assert!(step < 1000, "walk does not end");
        for c in changes.get(step).into_iter().flatten() {
            match c {
                Change::Insert(k) => {
                    data.insert(*k, k * 10);
                }
                Change::Delete(i) => {
                    if !data.is_empty() {
                        let k = *data.keys().nth(i.index(data.len())).unwrap();
                        data.remove(&k);
                        removed.insert(k);
                    }
                }
            }
        }
    }
    prop_assert!(
        returned.windows(2).all(|w| w[0] < w[1]),
        "walk repeated or reordered items: {returned:?}"
    );
    for k in initial.difference(&removed) {
        prop_assert!(
            returned.contains(k),
            "item {k}, present throughout, was skipped"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 512 }))]

    #[test]
    fn every_item_present_throughout_is_returned_once_in_order(
        initial in prop::collection::btree_set(0u64..400, 0..120),
        size in 1i64..12,
        changes in prop::collection::vec(prop::collection::vec(change(), 0..4), 0..40),
        forward in any::<bool>(),
        layout in layout(),
    ) {
        walk(&initial, size, &changes, forward, layout)?;
    }
}

#[test]
fn oversized_pages_are_coerced_and_empty_collections_have_one_empty_page() {
    let codec = CursorCodec::builder(sort()).build().unwrap();
    let query = codec.bind(b"");
    let sizes = PageSize::new(10, 50).unwrap();
    let data: BTreeMap<u64, u64> = (0..200).map(|k| (k, k)).collect();
    let req = PageRequest::from_relay(Some(1_000_000), None, None, None, sizes).unwrap();
    let page = fetch(&data, Layout::Map, &query, &req);
    assert_eq!(page.ids.len(), 50);
    let empty = fetch(&BTreeMap::new(), Layout::Shards(3), &query, &req);
    assert!(empty.ids.is_empty() && !empty.has_next && !empty.has_prev);
}

#[test]
fn an_empty_page_knows_the_cursors_own_item_lies_behind_it() {
    let codec = CursorCodec::builder(sort()).build().unwrap();
    let query = codec.bind(b"");
    let data: BTreeMap<u64, u64> = [(5, 50)].into();
    let sizes = PageSize::new(1, 10).unwrap();
    let cursor = query.encode(&[Value::Uint(5)]).unwrap().to_string();
    for layout in [Layout::Map, Layout::Slice, Layout::Shards(2)] {
        let after = PageRequest::from_relay(Some(1), Some(cursor.clone()), None, None, sizes);
        let page = fetch(&data, layout, &query, &after.unwrap());
        assert!(page.ids.is_empty() && !page.has_next);
        assert!(
            page.has_prev,
            "5 comes before the page after 5 ({layout:?})"
        );
        let before = PageRequest::from_relay(None, None, Some(1), Some(cursor.clone()), sizes);
        let page = fetch(&data, layout, &query, &before.unwrap());
        assert!(page.ids.is_empty() && !page.has_prev);
        assert!(
            page.has_next,
            "5 comes after the page before 5 ({layout:?})"
        );
    }
}

#[test]
fn a_scan_for_everything_does_not_reserve_for_everything() {
    use shardkit_pagination::{Direction, IterSource, Source};
    let shards: Vec<BTreeMap<u64, u64>> = (0..3)
        .map(|s| (0..100).filter(|k| k % 3 == s).map(|k| (k, k)).collect())
        .collect();
    let merged = Merged::new(shards, sort());
    for direction in [Direction::Forward, Direction::Backward] {
        assert_eq!(merged.scan(None, direction, usize::MAX).unwrap().len(), 100);
    }
    let rows: Vec<u64> = (0..100).collect();
    let source = IterSource::new(
        || rows.iter().copied(),
        sort(),
        |k: &u64| vec![Value::Uint(*k)],
    );
    for direction in [Direction::Forward, Direction::Backward] {
        assert_eq!(source.scan(None, direction, usize::MAX).unwrap().len(), 100);
    }
}
