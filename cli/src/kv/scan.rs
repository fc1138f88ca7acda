//! `GET /kv`: every key of every slot, paged in key order with one signed, opaque cursor.
//! Each slot is a pagination `Source` (local state, or the slot's holder over HTTP), and
//! `shardkit_pagination::Merged` draws the page from all of them lazily.

use std::cmp::Ordering;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use shardkit_pagination::{Direction, Error as PageError, Source, Value};

use super::layout::Layout;
use super::slot::{Entry, Slot};

/// A key and its value as text (values that are not UTF-8 are shown lossily).
pub(crate) type Item = (String, String);

/// One slot as a pagination source.
pub(crate) struct SlotSource<'a> {
    pub(crate) slot: u32,
    pub(crate) local: Option<&'a Slot>,
    pub(crate) layout: &'a Layout,
    pub(crate) agent: &'a ureq::Agent,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Source for SlotSource<'_> {
    type Item = Item;

    fn key(&self, item: &Item) -> Vec<Value> {
        vec![Value::Text(item.0.clone())]
    }

    fn compare(&self, a: &Item, b: &Item) -> Ordering {
        a.0.cmp(&b.0)
    }

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Item>, PageError> {
        let key = match bound {
            None => None,
            Some([Value::Text(k)]) => Some(k.as_str()),
            Some(_) => {
                return Err(PageError::InvalidKey {
                    reason: "a key cursor holds one text value".into(),
                });
            }
        };
        if let Some(slot) = self.local {
            return Ok(slot
                .scan(bound, direction, limit)?
                .into_iter()
                .map(|(k, v)| (k, text(&v)))
                .collect());
        }
        self.remote(key, direction == Direction::Forward, limit)
            .map_err(|reason| PageError::InvalidKey { reason })
    }
}

impl SlotSource<'_> {
    /// Asks the slot's holders in turn (ring preference order).
    fn remote(
        &self,
        bound: Option<&str>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Item>, String> {
        let mut query = format!(
            "dir={}&limit={limit}",
            if forward { "forward" } else { "backward" }
        );
        if let Some(b) = bound {
            query.push_str(&format!(
                "&bound={}",
                utf8_percent_encode(b, NON_ALPHANUMERIC)
            ));
        }
        for &holder in self.layout.holders(self.slot) {
            let Some(addr) = self.layout.http_addr(holder) else {
                continue;
            };
            let url = format!("http://{addr}/slot/{}/scan?{query}", self.slot);
            let Ok(response) = self.agent.get(&url).call() else {
                continue;
            };
            let Ok(body) = response.into_string() else {
                continue;
            };
            let items: Vec<(String, String)> =
                serde_json::from_str(&body).map_err(|e| format!("slot {}: {e}", self.slot))?;
            return Ok(items);
        }
        Err(format!("no holder of slot {} answered", self.slot))
    }
}

/// The answer to `GET /slot/{s}/scan?bound=&dir=&limit=` on a holder of the slot.
pub(crate) fn serve_slot_scan(slot: &Slot, query: &str) -> Result<String, String> {
    let param = |name: &str| super::node::query_param(query, name);
    let bound = param("bound")
        .map(|b| percent_decode_str(b).decode_utf8().map(|c| c.into_owned()))
        .transpose()
        .map_err(|e| format!("bad bound: {e}"))?;
    let direction = if param("dir") == Some("backward") {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .min(10_000);
    let bound = bound.map(|b| [Value::Text(b)]);
    let items: Vec<Item> = slot
        .scan(bound.as_ref().map(<[Value; 1]>::as_slice), direction, limit)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(k, v): Entry| (k, text(&v)))
        .collect();
    serde_json::to_string(&items).map_err(|e| e.to_string())
}
