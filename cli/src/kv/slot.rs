//! One slot on one node: its replica (a member of the slot's replica set) and the key-value
//! state applied from the slot's committed records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use shardkit_cache::Cache;
use shardkit_pagination::{Direction, Error as PageError, Source, Value};
use shardkit_replication::replica::{
    AckLevel, Committed, FileReplicaStore, Node, NodeId, Replica, ReplicaConfig, Role, TcpConfig,
    TcpTransport, Write, WriteError, Written,
};
use shardkit_replication::{Durability, FileLog, LogConfig, Offset};

use super::layout::{COORDINATOR, Layout};

/// A key and its value, as a slot holds them.
pub(crate) type Entry = (String, Arc<Vec<u8>>);

/// The node-wide read cache: `(slot, key)` to value.
pub(crate) type ReadCache = Cache<(u32, String), Arc<Vec<u8>>>;

/// A change to one key, as stored in the slot's log: the key in the record's key, and the
/// payload `P` + value or `D`.
pub(crate) enum Change<'a> {
    Put(&'a [u8]),
    Delete,
}

impl Change<'_> {
    fn encode(&self) -> Vec<u8> {
        match self {
            Change::Put(v) => {
                let mut p = Vec::with_capacity(v.len() + 1);
                p.push(b'P');
                p.extend_from_slice(v);
                p
            }
            Change::Delete => vec![b'D'],
        }
    }
}

/// The key-value state of a slot, applied in commit order.
#[derive(Debug, Default)]
struct State {
    map: BTreeMap<String, Arc<Vec<u8>>>,
    /// Every committed record before this offset is applied.
    applied: u64,
}

/// A slot hosted by this node.
pub(crate) struct Slot {
    pub(crate) slot: u32,
    node: Node<FileLog>,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Slot {
    /// Opens (or recovers) the slot's log under `data_dir`, joins its replica set over TCP and
    /// starts applying committed records. `rejoin`: the node lost its data directory (see
    /// `NodeArgs::rejoin`).
    pub(crate) fn open(
        layout: &Layout,
        me: u64,
        slot: u32,
        data_dir: &Path,
        cache: &Arc<ReadCache>,
        rejoin: bool,
    ) -> Result<Self, String> {
        let dir = data_dir.join(layout.slot_dir(slot));
        let log = FileLog::open(&dir, LogConfig::default().durability(Durability::Never))
            .map_err(|e| format!("slot {slot}: {e}"))?;
        let members = layout.holders(slot).iter().copied().map(NodeId::new);
        let mut config = ReplicaConfig::new(NodeId::new(me), members);
        config.coordinator = Some(COORDINATOR);
        // An empty data directory is either the cluster's first start, which forms the replica
        // set, or a lost disk, which must not vote until it has copied what was committed; only
        // the operator knows which. (A restart with its directory keeps its stored state.)
        config.bootstrap = !rejoin;
        config.heartbeat_interval = Duration::from_millis(50);
        config.fetch_wait = Duration::from_millis(200);
        config.fetch_timeout = Duration::from_millis(500);
        config.max_lag_time = Duration::from_secs(2);
        let replica = Replica::open(config, Arc::new(log), Box::new(FileReplicaStore::new(&dir)))
            .map_err(|e| format!("slot {slot}: {e}"))?;
        let addr = layout
            .replication_addr(me, slot)
            .ok_or("this node is not a member")?;
        let transport = TcpTransport::bind(
            NodeId::new(me),
            addr,
            &layout.group(slot),
            TcpConfig::default(),
        )
        .map_err(|e| format!("slot {slot}: listening on {addr}: {e}"))?;
        let node = Node::start(replica, transport);
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let mut sub = node.subscribe(Offset::new(0));
        let (applier_state, applier_cache) = (Arc::clone(&state), Arc::clone(cache));
        std::thread::Builder::new()
            .name(format!("apply-slot-{slot}"))
            .spawn(move || {
                loop {
                    let Ok(batch) = sub.next_batch(Duration::from_millis(200)) else {
                        return; // the log failed; the node stops applying
                    };
                    apply(
                        &applier_state,
                        &applier_cache,
                        slot,
                        &batch,
                        sub.position().get(),
                    );
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { slot, node, state })
    }

    pub(crate) fn role(&self) -> Option<(Role, Option<NodeId>)> {
        self.node.status().ok().map(|s| (s.role, s.leader))
    }

    pub(crate) fn status(&self) -> Option<shardkit_replication::replica::ReplicaStatus> {
        self.node.status().ok()
    }

    /// Every committed record before this offset is applied to the state.
    pub(crate) fn applied(&self) -> u64 {
        self.state
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .applied
    }

    /// Writes a change at quorum, idempotently when the client names its producer sequence.
    pub(crate) fn write(
        &self,
        key: &str,
        change: &Change<'_>,
        producer: Option<(u64, u64)>,
    ) -> Result<Written, WriteError> {
        let mut w = Write::new(change.encode(), AckLevel::Quorum)
            .with_key(key.as_bytes().to_vec())
            .with_timeout(Duration::from_secs(2));
        if let Some((p, seq)) = producer {
            w = w.idempotent(p, seq);
        }
        self.node.write(w)
    }

    /// Reads `key` once the record at offset `after` (a write's, if given) is applied
    /// (read-your-writes); `None` if that takes longer than `timeout`.
    pub(crate) fn read(
        &self,
        cache: &ReadCache,
        key: &str,
        after: Option<u64>,
        timeout: Duration,
    ) -> Option<Option<Arc<Vec<u8>>>> {
        let cache_key = (self.slot, key.to_string());
        let (lock, applied) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = std::time::Instant::now() + timeout;
        // `applied` counts records: the one at offset `a` is applied once it exceeds `a`.
        while after.is_some_and(|a| state.applied <= a) {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            state = applied
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if let Some(v) = cache.get(&cache_key) {
            return Some(Some(v));
        }
        // Filled under the state's lock, so an applier cannot slip an older value in after a
        // newer one.
        let value = state.map.get(key).cloned();
        if let Some(v) = &value {
            cache.insert(cache_key, Arc::clone(v));
        }
        Some(value)
    }

    /// Up to `limit` keys and values strictly after `bound` in key order (forward), or
    /// strictly before it, nearest first; from the first (or last) key without a bound. The
    /// map is a pagination [`Source`] as it is; a bound must be one text value.
    pub(crate) fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Entry>, PageError> {
        let state = self.state.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.map.scan(bound, direction, limit)
    }
}

fn apply(
    state: &(Mutex<State>, Condvar),
    cache: &ReadCache,
    slot: u32,
    batch: &[Committed],
    position: u64,
) {
    let (lock, applied) = state;
    let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
    for r in batch {
        let (Some(key), Some((&op, value))) = (&r.key, r.payload.split_first()) else {
            continue;
        };
        let Ok(key) = String::from_utf8(key.clone()) else {
            continue;
        };
        let cache_key = (slot, key.clone());
        match op {
            b'P' => {
                let v = Arc::new(value.to_vec());
                cache.insert(cache_key, Arc::clone(&v));
                s.map.insert(key, v);
            }
            b'D' => {
                cache.remove(&cache_key);
                s.map.remove(&key);
            }
            _ => {}
        }
    }
    if position > s.applied {
        s.applied = position;
        applied.notify_all();
    }
}
