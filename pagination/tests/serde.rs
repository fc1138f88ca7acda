//! Pages serialise as the Relay connection shape and read back unchanged.
#![cfg(feature = "serde")]

use std::collections::BTreeMap;

use shardkit_pagination::{ColumnType, CursorCodec, Page, PageRequest, Sort, paginate};

#[test]
fn pages_round_trip_through_json() {
    let rows: BTreeMap<u64, String> = (0..5).map(|k| (k, format!("v{k}"))).collect();
    let sort = Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .unwrap();
    let codec = CursorCodec::builder(sort).build().unwrap();
    let page = paginate(&rows, &codec.bind(b""), &PageRequest::first(2)).unwrap();
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(json["page_info"]["has_next_page"], true);
    assert_eq!(json["edges"][0]["node"][1], "v0");
    assert!(json["edges"][1]["cursor"].is_string());
    let back: Page<(u64, String)> = serde_json::from_value(json).unwrap();
    assert_eq!(back, page);
}
