//! `shardkit node`: one node of the key-value service: the replicas of the slots the ring
//! gives it, a read cache, and an HTTP/JSON API.
//!
//! - `GET /kv/{key}[?after=OFFSET]`: the value (`404` if absent). With `after`, waits until
//!   this replica has applied the write at the offset a write returned (read-your-writes on
//!   any replica of the slot).
//! - `PUT /kv/{key}` (a key of at most 1 KiB: `414` beyond; body: the value, at most 1 MiB:
//!   `413` beyond) and `DELETE /kv/{key}`:
//!   acknowledged at quorum, on the slot's leader; `X-Producer` and `X-Seq` headers (both,
//!   numbers) make a retry apply once. Answers `{"slot":S,"offset":O,"duplicate":B}`.
//! - `GET /kv?limit=N&cursor=C` (or `first`/`after`, `last`/`before`): every key in key
//!   order, merged across all slots, one signed opaque cursor per page; a `Link` header
//!   gives the next and previous pages.
//! - `GET /status`: the node's slots, roles, offsets and cache statistics.
//!
//! A request for a slot this node does not lead (or hold) is answered `307` with the
//! node to ask in `Location` when it is known, `503` while the slot elects a leader.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use shardkit_replication::replica::{Role, WriteError};

use shardkit_pagination::{
    ColumnType, CursorCodec, Merged, PageRequest, PageSize, Sort, link_header, paginate,
};

/// The largest value a `PUT` stores.
const MAX_VALUE: usize = 1 << 20;

/// The longest key a `PUT` stores: well within what a scan cursor holds
/// ([`shardkit_pagination::MAX_CURSOR_LEN`] characters of base64 for the key and more).
const MAX_KEY: usize = 1 << 10;

use super::layout::{Layout, Member};
use super::scan::{SlotSource, serve_slot_scan};
use super::slot::{Change, ReadCache, Slot};

/// Arguments of `shardkit node`.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// This node's id (one of the `--member`s).
    #[arg(long)]
    pub(crate) id: u64,
    /// Where the node keeps its slots' logs.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Entries in the node's read cache.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) cache_entries: u64,
    /// The secret that signs scan cursors (the same on every node, 16 bytes or more).
    #[arg(long, default_value = "change-me-shardkit-cursor-secret")]
    pub(crate) cursor_secret: String,
    /// This node lost its data directory and rejoins a running cluster: its slots' replicas
    /// may not vote in failovers until they have copied what was committed. Leave it off when
    /// the cluster first forms (and on restarts with the data directory intact).
    #[arg(long)]
    pub(crate) rejoin: bool,
    /// Exit when standard input closes. `shardkit demo` gives each node a pipe it holds, so
    /// its nodes stop when it ends, however it ends (a SIGTERM or SIGKILL to the demo alone
    /// left them running).
    #[arg(long, hide = true)]
    pub(crate) exit_with_parent: bool,
}

struct Service {
    layout: Layout,
    me: std::net::SocketAddr,
    slots: BTreeMap<u32, Slot>,
    cache: Arc<ReadCache>,
    codec: CursorCodec,
    agent: ureq::Agent,
}

/// Runs the node until the process is killed.
pub(crate) fn run(args: &NodeArgs) -> Result<(), String> {
    if args.exit_with_parent {
        std::thread::spawn(|| {
            // Nothing is ever written to the pipe: this returns when the parent's end closes.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eprintln!("the process that started this node is gone: stopping");
            std::process::exit(0);
        });
    }
    let layout = args.cluster.layout()?;
    let me = layout
        .http_addr(args.id)
        .ok_or_else(|| format!("--id {} is not among the --member flags", args.id))?;
    let cache = Arc::new(
        ReadCache::builder()
            .max_capacity(args.cache_entries)
            .build()
            .map_err(|e| e.to_string())?,
    );
    let mut slots = BTreeMap::new();
    for slot in 0..layout.slot_count() {
        if layout.holders(slot).contains(&args.id) {
            slots.insert(
                slot,
                Slot::open(&layout, args.id, slot, &args.data_dir, &cache, args.rejoin)?,
            );
        }
    }
    let server =
        Arc::new(tiny_http::Server::http(me).map_err(|e| format!("listening on {me}: {e}"))?);
    let sort = Sort::builder()
        .unique_asc("key", ColumnType::Text)
        .build()
        .map_err(|e| e.to_string())?;
    let codec = CursorCodec::builder(sort)
        .signing_key(1, args.cursor_secret.as_bytes())
        .build()
        .map_err(|e| format!("--cursor-secret: {e}"))?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let service = Arc::new(Service {
        layout,
        me,
        slots,
        cache,
        codec,
        agent,
    });
    println!(
        "node {} serving {} slots on http://{me}",
        args.id,
        service.slots.len()
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, service) = (Arc::clone(&server), Arc::clone(&service));
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    service.handle(request);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// The cluster's layout, as every `shardkit node` and `shardkit coordinators` of one cluster
/// must be given it.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Every node, as ID=HOST:PORT[/WEIGHT] (its HTTP address; replication uses the next
    /// ports).
    #[arg(long = "member", required = true)]
    pub(crate) members: Vec<Member>,
    /// The slot coordinators' base address (slot `s` at its port + `s`).
    #[arg(long)]
    pub(crate) coordinators: std::net::SocketAddr,
    /// Slots the key space is divided into.
    #[arg(long, default_value_t = 16)]
    pub(crate) slots: u32,
    /// Slots that moved to a new replica set, as SLOT=GENERATION (repeat the flag).
    #[arg(long = "generation")]
    pub(crate) generations: Vec<super::layout::Generation>,
}

impl ClusterArgs {
    fn layout(&self) -> Result<Layout, String> {
        Ok(Layout::new(&self.members, self.coordinators, self.slots)?
            .with_generations(&self.generations))
    }
}

/// Arguments of `shardkit coordinators`.
#[derive(Debug, Args)]
pub(crate) struct CoordinatorsArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

/// Runs the lease coordinator of every slot until the process is killed: the failure
/// detection and failover for a cluster of `shardkit node`s on several machines.
pub(crate) fn coordinate(args: &CoordinatorsArgs) -> Result<(), String> {
    let layout = args.cluster.layout()?;
    let coordinators = (0..layout.slot_count())
        .map(|slot| super::cluster::coordinator_for(&layout, slot))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "coordinating {} slots from {}",
        coordinators.len(),
        layout.coordinator_addr(0)
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

/// The slot of a `/slot/{slot}/scan` path. Stripped one end after the other: `/slot/scan`
/// has both ends, and slicing between them panicked.
fn scanned_slot(path: &str) -> Option<u32> {
    path.strip_prefix("/slot/")?
        .strip_suffix("/scan")?
        .parse()
        .ok()
}

/// A `PUT`'s value, or the answer refusing it: a body over [`MAX_VALUE`] is refused whole
/// (one byte past the limit is read to tell), never cut and stored.
fn read_value(body: impl std::io::Read) -> Result<Vec<u8>, Response> {
    let mut value = Vec::new();
    match body.take(MAX_VALUE as u64 + 1).read_to_end(&mut value) {
        Ok(n) if n > MAX_VALUE => Err(respond(
            413,
            format!("a value is at most {MAX_VALUE} bytes"),
        )),
        Ok(_) => Ok(value),
        Err(e) => Err(respond(400, format!("reading the body: {e}"))),
    }
}

/// The idempotent producer of a write, from its `X-Producer` and `X-Seq` headers: both
/// numbers, or neither. Anything else is refused, not taken as absent: a retry the client
/// meant to apply once would apply twice.
fn producer(headers: &[tiny_http::Header]) -> Result<Option<(u64, u64)>, String> {
    let number = |name: &'static str| {
        headers
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| {
                h.value
                    .as_str()
                    .parse::<u64>()
                    .map_err(|_| format!("{name} must be a number"))
            })
            .transpose()
    };
    match (number("X-Producer")?, number("X-Seq")?) {
        (None, None) => Ok(None),
        (Some(p), Some(seq)) => Ok(Some((p, seq))),
        _ => Err("send X-Producer and X-Seq together".into()),
    }
}

fn respond(status: u16, body: impl Into<Vec<u8>>) -> Response {
    tiny_http::Response::from_data(body.into()).with_status_code(status)
}

fn json(status: u16, value: &serde_json::Value) -> Response {
    respond(status, value.to_string()).with_header(header("Content-Type", "application/json"))
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| {
        tiny_http::Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).expect("a valid header")
    })
}

pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Service {
    fn handle(&self, mut request: tiny_http::Request) {
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/status") => self.status(),
            (tiny_http::Method::Get, "/kv") => self.scan(query),
            (tiny_http::Method::Get, p) if p.starts_with("/slot/") && p.ends_with("/scan") => {
                match scanned_slot(p).and_then(|s| self.slots.get(&s)) {
                    Some(s) => match serve_slot_scan(s, query) {
                        Ok(body) => respond(200, body),
                        Err(e) => respond(400, e),
                    },
                    None => respond(404, "this node does not hold that slot"),
                }
            }
            (method, p) if p.starts_with("/kv/") && p.len() > 4 => {
                let key = p[4..].to_string();
                match method {
                    tiny_http::Method::Get => self.get(&key, query),
                    // A key becomes a scan cursor's sort value: past a cursor's limit, every
                    // scan page holding it would fail.
                    tiny_http::Method::Put if key.len() > MAX_KEY => {
                        respond(414, format!("a key is at most {MAX_KEY} bytes"))
                    }
                    tiny_http::Method::Put => match read_value(request.as_reader()) {
                        Ok(body) => self.change(&key, &Change::Put(&body), &request),
                        Err(refused) => refused,
                    },
                    tiny_http::Method::Delete => self.change(&key, &Change::Delete, &request),
                    _ => respond(405, "use GET, PUT or DELETE"),
                }
            }
            _ => respond(404, "unknown path; see /status, /kv/{key}"),
        };
        let _ = request.respond(response);
    }

    /// A redirect to the node that should answer for `slot` (its leader when this node knows
    /// it, else its first holder), or `503` while there is none.
    fn elsewhere(&self, slot: u32, path_and_query: &str) -> Response {
        let known_leader = self
            .slots
            .get(&slot)
            .and_then(Slot::role)
            .and_then(|(_, leader)| leader.map(|l| l.get()));
        let target = known_leader
            .or_else(|| (!self.slots.contains_key(&slot)).then(|| self.layout.holders(slot)[0]));
        match target.and_then(|n| self.layout.http_addr(n)) {
            Some(addr) => respond(307, "ask the slot's leader").with_header(header(
                "Location",
                &format!("http://{addr}{path_and_query}"),
            )),
            None => respond(503, format!("slot {slot} has no leader yet; retry")),
        }
    }

    fn get(&self, key: &str, query: &str) -> Response {
        let slot = self.layout.slot_of(key);
        let Some(s) = self.slots.get(&slot) else {
            return self.elsewhere(slot, &format!("/kv/{key}?{query}"));
        };
        let after = match query_param(query, "after").map(str::parse::<u64>) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => return respond(400, "after must be a write's offset"),
        };
        match s.read(&self.cache, key, after, Duration::from_secs(2)) {
            Some(Some(v)) => respond(200, v.as_slice()),
            Some(None) => respond(404, "no such key"),
            None => respond(
                504,
                format!(
                    "this replica has not applied offset {} yet",
                    after.unwrap_or_default()
                ),
            ),
        }
    }

    fn change(&self, key: &str, change: &Change<'_>, request: &tiny_http::Request) -> Response {
        let slot = self.layout.slot_of(key);
        let leads = self
            .slots
            .get(&slot)
            .and_then(|s| s.role())
            .is_some_and(|(role, _)| role == Role::Leader);
        let Some(s) = self.slots.get(&slot).filter(|_| leads) else {
            return self.elsewhere(slot, &format!("/kv/{key}"));
        };
        let producer = match producer(request.headers()) {
            Ok(p) => p,
            Err(reason) => return respond(400, reason),
        };
        match s.write(key, change, producer) {
            Ok(w) => json(
                200,
                &serde_json::json!({"slot": slot, "offset": w.offset.get(), "duplicate": w.duplicate}),
            ),
            Err(WriteError::NotLeader { .. }) => self.elsewhere(slot, &format!("/kv/{key}")),
            Err(e) if e.is_fate_unknown() => {
                respond(504, format!("{e}; retry with the same X-Seq"))
            }
            Err(e) => respond(503, e.to_string()),
        }
    }

    /// A page of every key, merged across all slots.
    fn scan(&self, query: &str) -> Response {
        let param = |names: &[&str]| names.iter().find_map(|n| query_param(query, n));
        let number = |names| param(names).and_then(|v| v.parse::<i64>().ok());
        let text = |names| {
            param(names).map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        };
        let request = PageSize::new(100, 1000).and_then(|sizes| {
            PageRequest::from_relay(
                number(&["first", "limit"]),
                text(&["after", "cursor"]),
                number(&["last"]),
                text(&["before"]),
                sizes,
            )
        });
        let request = match request {
            Ok(r) => r,
            Err(e) => return respond(400, e.to_string()),
        };
        let sources = (0..self.layout.slot_count())
            .map(|slot| SlotSource {
                slot,
                local: self.slots.get(&slot),
                layout: &self.layout,
                agent: &self.agent,
            })
            .collect();
        let merged = Merged::new(sources, self.codec.sort().clone());
        let page = match paginate(&merged, &self.codec.bind(b"/kv"), &request) {
            Ok(p) => p,
            Err(e) => return respond(400, e.to_string()),
        };
        let items: Vec<serde_json::Value> = page
            .items()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        let body = serde_json::json!({
            "items": items,
            "next": page.next_cursor().map(|c| c.to_string()),
            "previous": page.prev_cursor().map(|c| c.to_string()),
        });
        let mut response = json(200, &body);
        if let Some(link) = link_header(&format!("http://{}/kv", self.me), request.size(), &page) {
            response = response.with_header(header("Link", &link));
        }
        response
    }

    fn status(&self) -> Response {
        let slots: Vec<serde_json::Value> = self
            .slots
            .values()
            .filter_map(|s| {
                let st = s.status()?;
                Some(serde_json::json!({
                    "slot": s.slot,
                    "role": format!("{:?}", st.role),
                    "epoch": st.epoch.get(),
                    "leader": st.leader.map(|l| l.get()),
                    "end": st.end.get(),
                    "commit": st.commit.get(),
                    "applied": s.applied(),
                }))
            })
            .collect();
        let stats = self.cache.stats();
        json(
            200,
            &serde_json::json!({
                "slots": slots,
                "cache": {
                    "hits": stats.hits,
                    "misses": stats.misses,
                    "hit_ratio": stats.hit_ratio(),
                    "entries": self.cache.len(),
                    "memory_bytes": self.cache.memory_used(),
                },
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_paths_parse_without_panicking() {
        assert_eq!(scanned_slot("/slot/7/scan"), Some(7));
        for bad in [
            "/slot/scan",
            "/slot//scan",
            "/slot/x/scan",
            "/slot/7/scan/",
            "/slot/",
        ] {
            assert_eq!(scanned_slot(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_value_over_the_limit_is_refused_not_cut() {
        let whole = read_value(&vec![7u8; MAX_VALUE][..])
            .ok()
            .expect("at the limit");
        assert_eq!(whole.len(), MAX_VALUE);
        match read_value(&vec![7u8; MAX_VALUE + 1][..]) {
            Ok(cut) => panic!("{} bytes stored", cut.len()),
            Err(refused) => assert_eq!(refused.status_code().0, 413),
        }
    }

    #[test]
    fn producer_headers_are_both_numbers_or_absent() {
        let h = |name: &str, value: &str| header(name, value);
        assert_eq!(producer(&[]), Ok(None));
        assert_eq!(
            producer(&[h("X-Producer", "3"), h("X-Seq", "9")]),
            Ok(Some((3, 9)))
        );
        assert!(producer(&[h("X-Producer", "3")]).is_err());
        assert!(producer(&[h("X-Producer", "3"), h("X-Seq", "nine")]).is_err());
    }
}
