//! The demo's HTTP client: routes each key to its slot's leader (writes) or any holder
//! (reads), follows redirects, and retries writes with the same producer sequence, so a write
//! whose fate was unknown is applied at most once.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::layout::Layout;

/// Where each slot's leader is, kept current by the demo's main thread.
pub(crate) type Leaders = Arc<RwLock<Vec<Option<SocketAddr>>>>;

/// What became of a write.
pub(crate) enum WriteOutcome {
    /// Acknowledged at quorum at this offset of its slot.
    Acked(u64),
    /// Not acknowledged before the deadline: it may or may not have been applied.
    Unknown,
}

/// What a read returned.
pub(crate) enum ReadOutcome {
    Value(Vec<u8>),
    Absent,
    /// No replica answered in time.
    Unavailable,
}

pub(crate) struct Client {
    agent: ureq::Agent,
    layout: Layout,
    leaders: Leaders,
    producer: u64,
    next_seq: u64,
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

impl Client {
    pub(crate) fn new(layout: Layout, leaders: Leaders, producer: u64) -> Self {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_millis(200))
            .timeout(Duration::from_secs(3))
            .build();
        Self {
            agent,
            layout,
            leaders,
            producer,
            next_seq: 0,
        }
    }

    fn leader(&self, slot: u32) -> Option<SocketAddr> {
        self.leaders
            .read()
            .ok()
            .and_then(|l| l.get(slot as usize).copied().flatten())
    }

    /// Puts (`Some`) or deletes (`None`) `key`, retrying the same sequence number until it is
    /// acknowledged or `deadline` passes.
    pub(crate) fn write(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        patience: Duration,
    ) -> WriteOutcome {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = self.layout.slot_of(key);
        let path = format!("/kv/{key}");
        let deadline = Instant::now() + patience;
        let mut target = self.leader(slot);
        while Instant::now() < deadline {
            let Some(addr) = target.or_else(|| self.leader(slot)) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let request = match value {
                Some(_) => self.agent.put(&url(addr, &path)),
                None => self.agent.delete(&url(addr, &path)),
            }
            .set("X-Producer", &self.producer.to_string())
            .set("X-Seq", &seq.to_string());
            let result = match value {
                Some(v) => request.send_bytes(v),
                None => request.call(),
            };
            target = None;
            match result {
                Ok(response) => {
                    let offset = response
                        .into_string()
                        .ok()
                        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                        .and_then(|j| j["offset"].as_u64());
                    if let Some(offset) = offset {
                        return WriteOutcome::Acked(offset);
                    }
                }
                Err(ureq::Error::Status(307, response)) => {
                    target = response
                        .header("Location")
                        .and_then(|l| l.strip_prefix("http://"))
                        .and_then(|l| l.split('/').next())
                        .and_then(|a| a.parse().ok());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        WriteOutcome::Unknown
    }

    /// Reads `key` from `holder` (any replica of its slot), once it has applied the write at
    /// offset `after`, if given.
    pub(crate) fn read(&self, key: &str, holder: u64, after: Option<u64>) -> ReadOutcome {
        let Some(addr) = self.layout.http_addr(holder) else {
            return ReadOutcome::Unavailable;
        };
        let query = after.map_or_else(String::new, |a| format!("?after={a}"));
        match self
            .agent
            .get(&url(addr, &format!("/kv/{key}{query}")))
            .call()
        {
            Ok(response) => {
                let mut body = Vec::new();
                match std::io::Read::read_to_end(&mut response.into_reader(), &mut body) {
                    Ok(_) => ReadOutcome::Value(body),
                    Err(_) => ReadOutcome::Unavailable,
                }
            }
            Err(ureq::Error::Status(404, _)) => ReadOutcome::Absent,
            Err(_) => ReadOutcome::Unavailable,
        }
    }

    /// Pages through every key via `node`'s `GET /kv`, `page` at a time, following the
    /// cursor; returns the items in the order served and the number of pages.
    pub(crate) fn scan_all(
        &self,
        node: u64,
        page: u32,
    ) -> Result<(Vec<(String, String)>, u32), String> {
        let addr = self.layout.http_addr(node).ok_or("no such node")?;
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut request = self
                .agent
                .get(&url(addr, "/kv"))
                .query("first", &page.to_string());
            if let Some(c) = &cursor {
                request = request.query("after", c);
            }
            let body = request
                .call()
                .map_err(|e| format!("scan page {pages}: {e}"))?
                .into_string()
                .map_err(|e| e.to_string())?;
            let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            pages += 1;
            for item in json["items"].as_array().into_iter().flatten() {
                let (Some(k), Some(v)) = (item["key"].as_str(), item["value"].as_str()) else {
                    return Err(format!("malformed scan item {item}"));
                };
                items.push((k.to_string(), v.to_string()));
            }
            match json["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok((items, pages)),
            }
        }
    }

    /// Every key and value of `slot`, read from the first of its holders that answers.
    pub(crate) fn slot_items(&self, slot: u32) -> Result<Vec<(String, String)>, String> {
        'holders: for &holder in self.layout.holders(slot) {
            let Some(addr) = self.layout.http_addr(holder) else {
                continue;
            };
            let mut items: Vec<(String, String)> = Vec::new();
            loop {
                let mut request = self
                    .agent
                    .get(&url(addr, &format!("/slot/{slot}/scan")))
                    .query("limit", "5000");
                if let Some((last, _)) = items.last() {
                    request = request.query("bound", last);
                }
                let Ok(body) = request.call().map(|r| r.into_string()) else {
                    continue 'holders;
                };
                let page: Vec<(String, String)> = body
                    .ok()
                    .and_then(|b| serde_json::from_str(&b).ok())
                    .ok_or_else(|| format!("slot {slot}: a malformed scan page"))?;
                let done = page.len() < 5000;
                items.extend(page);
                if done {
                    return Ok(items);
                }
            }
        }
        Err(format!("no holder of slot {slot} answered"))
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A node's `/status` as JSON.
    pub(crate) fn status(&self, node: u64) -> Option<serde_json::Value> {
        let addr = self.layout.http_addr(node)?;
        let body = self
            .agent
            .get(&url(addr, "/status"))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        serde_json::from_str(&body).ok()
    }
}
