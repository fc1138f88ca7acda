//! Turning an API's query arguments into a validated page request, as a handler would.
//!
//! `cargo run --example relay_args -p shardkit-pagination -- 'first=50' 'after=abc'`

use shardkit_pagination::{PageRequest, PageSize};

fn main() {
    let (mut first, mut after, mut last, mut before) = (None, None, None, None);
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("first", v)) => first = v.parse().ok(),
            Some(("last", v)) => last = v.parse().ok(),
            Some(("after", v)) => after = Some(v.to_string()),
            Some(("before", v)) => before = Some(v.to_string()),
            _ => eprintln!("ignoring {arg:?}"),
        }
    }
    let sizes = PageSize::new(20, 100).expect("valid policy");
    match PageRequest::from_relay(first, after, last, before, sizes) {
        Ok(req) => println!(
            "{:?} page of {} items from {:?}",
            req.direction(),
            req.size(),
            req.cursor()
        ),
        Err(e) => println!("400 Bad Request: {e}"),
    }
}
