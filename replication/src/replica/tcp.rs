//! Packets over TCP: the transport between nodes (outgoing links in [`link`], incoming
//! connections here), and the client of a node.

mod auth;
mod link;

pub use auth::AuthKey;

use auth::{Incoming, NONCE_LEN, Session};
use crossbeam_channel::{Receiver, Sender, unbounded as channel};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::transport::{DeliveryHook, Inbound, ReplyTo, Transport};
use super::types::NodeId;
use super::wire::{MAX_PACKET, Packet, encode_packet_head};
use crate::error::FrameError;
use link::{Link, PeerWrite};

/// The smallest [`TcpConfig::max_packet`]: smaller ones would not carry a snapshot's part.
const MIN_PACKET: usize = 4 << 10;

/// Timeouts and limits of a [`TcpTransport`].
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one write may block before the connection is dropped.
    pub write_timeout: Duration,
    /// The first wait before reconnecting; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait before reconnecting.
    pub max_backoff: Duration,
    /// The largest packet body accepted (at least 4 KiB). Packets sent are at most this and
    /// [`MAX_PACKET`]; a [`Node`](super::Node) fits its messages to them
    /// ([`Replica::limit_packets`](super::Replica::limit_packets)), so give every member of a
    /// replica set the same.
    pub max_packet: usize,
    /// How often a connection to a peer looks whether it sent anything since it last looked,
    /// and if not, sends a [`Packet::Keepalive`], so that its receiver can tell a quiet link
    /// from a dead peer. A quiet link so carries a packet at least every two intervals.
    pub keepalive_interval: Duration,
    /// How long an incoming connection may stay silent before it is closed, unless it is a
    /// client's that has sent a request (clients send no keepalives, so a client that lost
    /// its host keeps its connection's threads until the node stops). A peer's host that lost
    /// power never closes its connections, and each would keep a reader thread and its buffer
    /// for good. At least three `keepalive_interval`s (a quiet link's longest gap is two, plus
    /// a busy machine's delays), and at most a day. With a key, a connection must also open
    /// with its [`Packet::Hello`] within this time, however slowly its bytes come. And every
    /// packet must be whole within this time of its first bytes, plus a second per 64 KiB of
    /// it, and its bytes may not stop for this long, or its connection is closed
    /// ([`TcpStats::stalled_packets`]), a client's too: a sender cannot hold a connection by
    /// trickling a packet's bytes. (A packet late is seen when its next bytes come, so it is
    /// closed at most this long after its deadline.) A link slower than 64 KiB/s needs a
    /// longer timeout for its largest packets.
    pub idle_timeout: Duration,
    /// The members' key: every packet is authenticated with it (see [`AuthKey`]); `None`,
    /// the default, trusts the network. Every node and coordinator of a replica set needs the
    /// same, and so do its [`TcpClient`]s unless `client_auth` is set.
    pub auth: Option<AuthKey>,
    /// The most incoming connections served at once (peers' links and clients); further ones
    /// are closed at once ([`TcpStats::refused_connections`]). Each holds a thread or two and
    /// a read buffer: the bound keeps a flood of connections from taking them all. A client's
    /// connection counts until it closes (it has no idle timeout); one whose host vanished
    /// is closed by TCP keepalive probes, sent once it has been idle for `idle_timeout`,
    /// three unanswered a `keepalive_interval` apart (at least a second each).
    ///
    /// Two places per peer are kept for peers' links (its link, and one for a reconnection
    /// while the old connection is not yet seen to be dead): clients, counted from their
    /// first request, may hold the rest, and a connection whose first request finds them all
    /// held is closed ([`TcpStats::refused_clients`]). So clients that keep their connections
    /// open, however many, cannot shut a member's link out and stop replication. That holds
    /// against clients, not against a sender posing as a peer: without a key anyone can
    /// (see [`TcpTransport`]), and so can a client given the members' key (give clients their
    /// own, `client_auth`); a connection that sends nothing holds a place for up to
    /// `idle_timeout`, and one that trickles a packet's bytes until the packet is overdue
    /// (see `idle_timeout`). It must be more than two per peer.
    pub max_connections: usize,
    /// The clients' key, if clients should not hold the members' (which would let them speak
    /// the protocol as a member): with it, a client's writes and status requests, and the
    /// answers to them, are authenticated with this key only (a request tagged with the
    /// members' key is refused, since its answer would carry a tag the client could not
    /// check), and a protocol packet carrying it is refused. Needs `auth`.
    pub client_auth: Option<AuthKey>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            write_timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            max_packet: MAX_PACKET,
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            max_connections: 1024,
            auth: None,
            client_auth: None,
        }
    }
}

impl TcpConfig {
    /// Refuses settings the transport cannot work with.
    fn check(&self) -> std::io::Result<()> {
        let invalid = |reason: &str| {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                reason,
            ))
        };
        if self.max_connections == 0 {
            return invalid("max_connections must be positive");
        }
        if self.max_packet < MIN_PACKET {
            return invalid("max_packet must be at least 4 KiB");
        }
        if self.keepalive_interval.is_zero() {
            return invalid("keepalive_interval must be positive");
        }
        if self.idle_timeout < self.keepalive_interval.saturating_mul(3) {
            return invalid("idle_timeout must be at least three keepalive_intervals");
        }
        if self.idle_timeout > Duration::from_secs(24 * 3600) {
            return invalid("idle_timeout must be at most a day");
        }
        match (&self.auth, &self.client_auth) {
            (None, Some(_)) => return invalid("client_auth needs auth, the members' key"),
            // Every client request would count as the members' and be refused.
            (Some(members), Some(clients)) if members.same_as(clients) => {
                return invalid("client_auth must be another key than auth");
            }
            _ => {}
        }
        Ok(())
    }
}

/// Counters of a [`TcpTransport`]'s trouble, for status pages and tests.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections dropped because a frame failed validation.
    pub rejected_frames: AtomicU64,
    /// Packets from a node id that is not a peer (dropped).
    pub unknown_senders: AtomicU64,
    /// Outgoing connections made (the first, then reconnections).
    pub connects: AtomicU64,
    /// Sends dropped: their peer was unreachable, its connection failed, or it was so slow
    /// that its link's queue was full.
    pub dropped: AtomicU64,
    /// Incoming connections closed at once: [`TcpConfig::max_connections`] were being served.
    pub refused_connections: AtomicU64,
    /// Connections closed at their first request: clients held every place
    /// [`TcpConfig::max_connections`] leaves them.
    pub refused_clients: AtomicU64,
    /// Connections closed because a packet's bytes came too slowly: a packet must be whole
    /// within [`TcpConfig::idle_timeout`] of its first bytes, plus a second per 64 KiB of it
    /// (checked as its bytes come), and its bytes may not stop for `idle_timeout`.
    pub stalled_packets: AtomicU64,
}

/// Packets over TCP (`std::net`): one outgoing connection per peer, written directly by the
/// sender as far as the socket takes the bytes at once, the rest by the link's own thread,
/// which also reconnects with exponential backoff; one reader thread per incoming connection, which validates every frame and drops
/// the connection on the first bad one, or when it stays silent past
/// [`TcpConfig::idle_timeout`] (quiet links send keepalives). Clients connect the same way
/// and get their answers on their connection.
///
/// It supports [`Transport::set_on_delivery`]: under a [`Node`](super::Node), a reader thread
/// handles what it read itself, including the log writes, syncs and sends that follow.
///
/// Packets carry their sender's id, which is checked against the peer list. Without a key
/// ([`TcpConfig::auth`]) nothing proves the id: run it on a trusted network, or give every
/// node the members' [`AuthKey`] (and clients theirs, [`TcpConfig::client_auth`]), and a
/// sender without one is not heard.
pub struct TcpTransport {
    local: SocketAddr,
    peers: HashMap<NodeId, Arc<Link>>,
    inbox: Receiver<Inbound>,
    stats: Arc<TcpStats>,
    stop: Arc<AtomicBool>,
    on_delivery: Arc<OnceLock<DeliveryHook>>,
    /// Whether packets to peers are tagged (by their links): [`TcpConfig::auth`] is set.
    keyed: bool,
    /// [`TcpConfig::max_packet`].
    max_packet: usize,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("local", &self.local)
            .field("peers", &self.peers)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Listens on `listen` as node `id`, with `peers` (ids and addresses; `id` itself is
    /// skipped).
    ///
    /// # Errors
    ///
    /// The listener's bind error, or [`std::io::ErrorKind::InvalidInput`] for a `config` whose
    /// `keepalive_interval` is zero, whose `idle_timeout` is less than three of them or more
    /// than a day, whose `max_packet` is under 4 KiB, whose `max_connections` is not more
    /// than two per peer, or that has a `client_auth` without an `auth` or equal to it.
    pub fn bind(
        id: NodeId,
        listen: SocketAddr,
        peers: &HashMap<NodeId, SocketAddr>,
        config: TcpConfig,
    ) -> std::io::Result<Self> {
        config.check()?;
        let peer_count = peers.keys().filter(|&&peer| peer != id).count();
        let client_slots = config
            .max_connections
            .checked_sub(PLACES_PER_PEER * peer_count)
            .filter(|&slots| slots > 0)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "max_connections must be more than two per peer",
                )
            })?;
        let listener = TcpListener::bind(listen)?;
        let local = listener.local_addr()?;
        let (tx, rx) = channel();
        let stats = Arc::new(TcpStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let known: Arc<Vec<NodeId>> = Arc::new(peers.keys().copied().collect());
        let on_delivery = Arc::new(OnceLock::new());
        {
            let receiving = Receiving {
                id,
                served: Arc::new(AtomicUsize::new(0)),
                clients: Arc::new(AtomicUsize::new(0)),
                client_slots,
                inbox: tx,
                known,
                config: config.clone(),
                stats: Arc::clone(&stats),
                stop: Arc::clone(&stop),
                on_delivery: Arc::clone(&on_delivery),
            };
            std::thread::Builder::new()
                .name(format!("shardkit-accept-{id}"))
                .spawn(move || accept_loop(listener, &receiving))?;
        }
        let mut links = HashMap::new();
        for (&peer, &addr) in peers {
            if peer == id {
                continue;
            }
            let link = Link::start(peer, addr, &config, &stats, &stop)?;
            links.insert(peer, link);
        }
        Ok(Self {
            local,
            peers: links,
            inbox: rx,
            stats,
            stop,
            on_delivery,
            keyed: config.auth.is_some(),
            max_packet: config.max_packet,
        })
    }

    /// Transports for nodes `ids` on this machine, each listening on its own fresh loopback
    /// port, for tests, demos and single-machine clusters. Every address is bound before the
    /// set is returned (no two nodes are given the same port: each probe is held until all
    /// are chosen). A transport starts connecting to its peers as soon as it is bound, so an
    /// outgoing connection's ephemeral port can take an address a later node was given; that,
    /// or another process taking one, makes the whole set be tried again on fresh ports, up
    /// to ten times.
    ///
    /// # Errors
    ///
    /// A bind error other than the address being in use, or that error after ten tries.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_replication::replica::{NodeId, TcpConfig, TcpTransport};
    ///
    /// let ids = [NodeId::new(1), NodeId::new(2), NodeId::new(3)];
    /// let mut cluster = TcpTransport::bind_loopback(&ids, TcpConfig::default())?;
    /// let one = cluster.transports.remove(&ids[0]).expect("bound");
    /// assert_eq!(one.local_addr(), cluster.addrs[&ids[0]]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_loopback(ids: &[NodeId], config: TcpConfig) -> std::io::Result<LoopbackTransports> {
        let mut last = None;
        for _ in 0..10 {
            // Held until every node has a port, so no two nodes are given the same one.
            let probes = ids
                .iter()
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut addrs = HashMap::new();
            for (&id, probe) in ids.iter().zip(&probes) {
                addrs.insert(id, probe.local_addr()?);
            }
            drop(probes);
            let bound: std::io::Result<HashMap<NodeId, TcpTransport>> = ids
                .iter()
                .map(|&id| Self::bind(id, addrs[&id], &addrs, config.clone()).map(|t| (id, t)))
                .collect();
            match bound {
                Ok(transports) => return Ok(LoopbackTransports { addrs, transports }),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its trouble counters.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }
}

/// What [`TcpTransport::bind_loopback`] bound: every node's address, and its transport to
/// hand to its node.
#[derive(Debug)]
pub struct LoopbackTransports {
    /// Where each node listens.
    pub addrs: HashMap<NodeId, SocketAddr>,
    /// Each node's transport, already listening.
    pub transports: HashMap<NodeId, TcpTransport>,
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock the accept loop.
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(100));
    }
}

impl Transport for TcpTransport {
    fn send(&self, to: NodeId, packet: Packet) {
        self.send_batch(vec![(to, packet)]);
    }

    fn send_batch(&self, packets: Vec<(NodeId, Packet)>) {
        let version = auth::version(self.keyed);
        let mut writes: Vec<PeerWrite<'_>> = Vec::new();
        for (to, packet) in &packets {
            let i = match writes.iter().position(|w| w.to == *to) {
                Some(i) => i,
                None => {
                    writes.push(PeerWrite {
                        to: *to,
                        heads: Vec::new(),
                        frames: Vec::new(),
                    });
                    writes.len() - 1
                }
            };
            let w = &mut writes[i];
            // A packet too large to encode is dropped; the protocol never builds one.
            if let Ok(frames) = encode_packet_head(packet, &mut w.heads, version) {
                w.frames.push((w.heads.len(), frames));
            }
        }
        for w in &writes {
            if let Some(link) = self.peers.get(&w.to) {
                link.write(w, &self.stats);
            }
        }
    }

    fn inbox(&self) -> &Receiver<Inbound> {
        &self.inbox
    }

    fn max_packet(&self) -> usize {
        // Nothing larger is ever encoded, whatever the receiving side would take.
        self.max_packet.min(MAX_PACKET)
    }

    /// Reader threads call `hook` after each read's packets (a later call keeps the first
    /// hook).
    fn set_on_delivery(&self, hook: DeliveryHook) -> bool {
        let _ = self.on_delivery.set(hook);
        true
    }
}

/// What every reader thread of a transport shares.
#[derive(Clone)]
struct Receiving {
    /// The node's own id: a peer's link must mean it.
    id: NodeId,
    /// Incoming connections being served.
    served: Arc<AtomicUsize>,
    /// Of them, clients' (connections that sent a request), and how many may be.
    clients: Arc<AtomicUsize>,
    client_slots: usize,
    inbox: Sender<Inbound>,
    known: Arc<Vec<NodeId>>,
    config: TcpConfig,
    stats: Arc<TcpStats>,
    stop: Arc<AtomicBool>,
    on_delivery: Arc<OnceLock<DeliveryHook>>,
}

fn accept_loop(listener: TcpListener, receiving: &Receiving) {
    for stream in listener.incoming() {
        if receiving.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        // Counted until the thread ends, or at once if it cannot start (the closure drops).
        let Some(served) = Place::take(&receiving.served, receiving.config.max_connections) else {
            receiving
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Best effort: without probes a vanished client's connection waits for its host.
        let _ = probe_when_idle(&stream, &receiving.config);
        let receiving = receiving.clone();
        let _ = std::thread::Builder::new()
            .name("shardkit-conn".into())
            .spawn(move || {
                let _served = served;
                serve_connection(stream, &receiving);
            });
    }
}

/// Unanswered TCP keepalive probes after which the kernel closes a connection.
const KEEPALIVE_PROBES: u32 = 3;

/// Has the kernel probe an accepted connection once it has been idle for the idle timeout,
/// and close it after [`KEEPALIVE_PROBES`] unanswered probes a keepalive interval apart (at
/// least a second each): a client's connection has no idle timeout of its own, so without
/// them one whose host vanished would hold its slot of `max_connections` for good.
fn probe_when_idle(stream: &TcpStream, config: &TcpConfig) -> std::io::Result<()> {
    use rustix::net::sockopt;
    let second = Duration::from_secs(1);
    sockopt::set_socket_keepalive(stream, true)?;
    sockopt::set_tcp_keepidle(stream, config.idle_timeout.max(second))?;
    sockopt::set_tcp_keepintvl(stream, config.keepalive_interval.max(second))?;
    sockopt::set_tcp_keepcnt(stream, KEEPALIVE_PROBES)?;
    Ok(())
}

/// Places kept for each peer's link out of [`TcpConfig::max_connections`]: its link, and its
/// next one, which can arrive while the old connection still waits to be seen dead (a peer
/// whose host vanished is noticed only after the idle timeout).
const PLACES_PER_PEER: usize = 2;

/// One of a bounded number of places (connections served, or clients' among them), held
/// while it lives.
struct Place(Arc<AtomicUsize>);

impl Place {
    /// A place, if fewer than `limit` are held.
    fn take(held: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .ok()?;
        Some(Self(Arc::clone(held)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads frames from one incoming connection until it closes or sends a bad frame. Answers
/// to a client's requests go back on the same connection, written by a second thread started
/// with the first request. With a key, the connection opens with the node's challenge and the
/// connector's hello, whose nonces the tags cover.
fn serve_connection(stream: TcpStream, receiving: &Receiving) {
    let config = &receiving.config;
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    if writer
        .set_write_timeout(Some(config.write_timeout))
        .is_err()
    {
        return;
    }
    // With a key: the node's nonce, and what checks the connector's tags.
    let mut keyed = match &config.auth {
        None => None,
        Some(members) => {
            let Ok(nonce) = auth::nonce() else { return };
            if writer.write_all(&auth::challenge(nonce)).is_err() {
                return;
            }
            Some((
                nonce,
                Incoming::new(members, config.client_auth.as_ref(), &nonce),
            ))
        }
    };
    // With a key, once the connector's hello came: the node it meant, and its nonce.
    let mut hello: Option<(Option<NodeId>, [u8; NONCE_LEN])> = None;
    let mut writer = Some(writer);
    // Once a client's first request came: where its answers go, and its place among the
    // clients', held by this reader and by the thread answering (whichever ends last).
    let mut replies: Option<(Sender<Packet>, Arc<Place>)> = None;
    let mut reader = stream;
    // Silence past the idle timeout means a dead peer, until a client shows itself.
    if reader.set_read_timeout(Some(config.idle_timeout)).is_err() {
        return;
    }
    // Until a packet is authenticated, only a small one is taken (one buffer's worth).
    let mut max = match keyed {
        Some(_) => auth::FIRST_PACKET_MAX.min(config.max_packet),
        None => config.max_packet,
    };
    // Read straight into `buf[filled..]`; packets are decoded from `buf[at..filled]`.
    let mut buf = vec![0u8; 64 << 10];
    let (mut at, mut filled) = (0, 0);
    // With a key, the hello must come within the idle timeout of accepting, however its
    // bytes trickle in: a sender without the key holds a connection no longer.
    let hello_by = Instant::now() + config.idle_timeout;
    // The packet partly received, if any: when its first bytes came, and its deadline.
    let mut partial: Option<PartialPacket> = None;
    // Whether a client's connection, which has no read timeout between requests, has one set
    // while a packet is partly received.
    let mut client_mid_packet = false;
    while !receiving.stop.load(Ordering::Relaxed) {
        if keyed.is_some() && hello.is_none() {
            let left = hello_by.saturating_duration_since(Instant::now());
            if left.is_zero() || reader.set_read_timeout(Some(left)).is_err() {
                return;
            }
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if partial.is_some() && is_timeout(&e) => {
                close_stalled(receiving, &reader);
                return;
            }
            Err(_) => {
                // Silent too long, or broken: closed for the answering thread too, which
                // would otherwise keep it open for answers still to come.
                let _ = reader.shutdown(Shutdown::Both);
                return;
            }
        };
        filled += n;
        let mut delivered = false;
        let mut decoded = false;
        loop {
            let incoming = keyed.as_mut().map(|(_, incoming)| incoming);
            match auth::decode_received(incoming, &buf[at..filled], max) {
                Ok((packet, used, sender)) => {
                    at += used;
                    decoded = true;
                    max = config.max_packet;
                    if keyed.is_some() && hello.is_none() {
                        // The connector's first packet: its hello, meant for this node or,
                        // from a client, for any.
                        match packet {
                            Packet::Hello { nonce, to }
                                if to.is_none_or(|to| to == receiving.id) =>
                            {
                                hello = Some((to, nonce));
                                if reader.set_read_timeout(Some(config.idle_timeout)).is_err() {
                                    return;
                                }
                                continue;
                            }
                            _ => {
                                reject(receiving, &reader);
                                return;
                            }
                        }
                    }
                    let meant_here = hello.is_none_or(|(to, _)| to == Some(receiving.id));
                    let clients_keyed = config.client_auth.is_some();
                    if !admits(&packet, sender, clients_keyed, meant_here) {
                        reject(receiving, &reader);
                        return;
                    }
                    if let Packet::Protocol { from, .. } = &packet
                        && !receiving.known.contains(from)
                    {
                        receiving
                            .stats
                            .unknown_senders
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let reply = match packet {
                        Packet::Keepalive => continue,
                        Packet::Protocol { .. } => ReplyTo::none(),
                        // A client's request.
                        _ => {
                            if replies.is_none() {
                                let Some(place) =
                                    Place::take(&receiving.clients, receiving.client_slots)
                                else {
                                    receiving
                                        .stats
                                        .refused_clients
                                        .fetch_add(1, Ordering::Relaxed);
                                    return;
                                };
                                // Clients send no keepalives: a client's connection may be
                                // quiet between requests for as long as it likes.
                                let answers =
                                    keyed.as_ref().zip(hello).map(|((node, _), (_, theirs))| {
                                        let key =
                                            config.client_auth.as_ref().or(config.auth.as_ref());
                                        Session::from_acceptor(key.expect("keyed"), node, &theirs)
                                    });
                                let (tx, rx) = channel::<Packet>();
                                let Some(writer) = writer.take() else { return };
                                let place = Arc::new(place);
                                let answering = Arc::clone(&place);
                                let started = std::thread::Builder::new()
                                    .name("shardkit-reply".into())
                                    .spawn(move || {
                                        let _place = answering;
                                        write_replies(writer, &rx, answers);
                                    });
                                if started.is_err() || reader.set_read_timeout(None).is_err() {
                                    return;
                                }
                                replies = Some((tx, place));
                            }
                            let (tx, _) = replies.as_ref().expect("started above");
                            ReplyTo::connection(tx.clone())
                        }
                    };
                    if receiving.inbox.send(Inbound { packet, reply }).is_err() {
                        return;
                    }
                    delivered = true;
                }
                // Everything read is decoded: no packet begun.
                Err(FrameError::Incomplete { .. }) if at == filled => break,
                Err(FrameError::Incomplete { needed, .. }) => {
                    // The packet partly received before, unless this read finished one:
                    // then this one began in it.
                    let since = partial
                        .filter(|_| !decoded)
                        .map_or_else(Instant::now, |p| p.since);
                    let packet = PartialPacket { since, len: needed };
                    if packet.overdue(config.idle_timeout) {
                        close_stalled(receiving, &reader);
                        return;
                    }
                    // Make room for the rest of the packet (or a full read after a partial
                    // header) by moving its start to the front; grow only a buffer full of
                    // received bytes, at most doubling it, so memory follows what the peer
                    // sent, not the length it claims.
                    if at + needed.max(64 << 10) > buf.len() {
                        buf.copy_within(at..filled, 0);
                        (at, filled) = (0, filled - at);
                    }
                    if filled == buf.len() {
                        buf.resize(needed.min(2 * buf.len()), 0);
                    }
                    // A client's connection has no read timeout between requests, but one
                    // that stops in the middle of a packet is closed like a silent peer's.
                    if replies.is_some() && !client_mid_packet {
                        if reader.set_read_timeout(Some(config.idle_timeout)).is_err() {
                            return;
                        }
                        client_mid_packet = true;
                    }
                    partial = Some(packet);
                    break;
                }
                Err(_) => {
                    reject(receiving, &reader);
                    return;
                }
            }
        }
        if at == filled {
            (at, filled) = (0, 0);
            partial = None;
            if client_mid_packet {
                if reader.set_read_timeout(None).is_err() {
                    return;
                }
                client_mid_packet = false;
            }
        }
        if delivered && let Some(hook) = receiving.on_delivery.get() {
            hook();
            // The node's own work on what it received (log writes, syncs) is not the
            // sender's: a packet begun in this read starts its clock now.
            if let Some(p) = &mut partial {
                p.since = Instant::now();
            }
        }
    }
}

/// A packet whose first bytes came and whose last have not.
#[derive(Debug, Clone, Copy)]
struct PartialPacket {
    /// When its first bytes came.
    since: Instant,
    /// Its length, as far as its header says yet.
    len: usize,
}

/// The slowest rate a packet's bytes may come at (64 KiB a second), on top of the idle
/// timeout every packet is given: a sender cannot hold a connection (its place and its reader
/// thread) by trickling a packet's bytes, each within the idle timeout of the last, while a
/// packet of the largest size ([`MAX_PACKET`]) still has over 17 minutes on a slow link.
const MIN_PACKET_RATE: u64 = 64 << 10;

impl PartialPacket {
    /// Whether it is not whole yet past its deadline: `idle_timeout` after its first bytes,
    /// plus a second per [`MIN_PACKET_RATE`] bytes of its length.
    fn overdue(&self, idle_timeout: Duration) -> bool {
        let transfer = Duration::from_secs_f64(self.len as f64 / MIN_PACKET_RATE as f64);
        self.since.elapsed() > idle_timeout + transfer
    }
}

/// Whether a node takes `packet`, tagged by `sender` (a member's, without a key), on a
/// connection whose connector meant it (always, without a key).
fn admits(packet: &Packet, sender: auth::Sender, clients_keyed: bool, meant_here: bool) -> bool {
    match packet {
        // A member's, for this node.
        Packet::Protocol { .. } | Packet::Keepalive => sender == auth::Sender::Member && meant_here,
        // A client's; with the clients' key where they have one (an answer would carry a tag
        // a client with the members' key could not check).
        Packet::Write { .. } | Packet::StatusRequest { .. } => {
            !(sender == auth::Sender::Member && clients_keyed)
        }
        // Only nodes send the others; a hello only opens a connection.
        _ => false,
    }
}

/// Drops a connection that sent a bad or forbidden packet: nothing after it can be trusted.
fn reject(receiving: &Receiving, connection: &TcpStream) {
    receiving
        .stats
        .rejected_frames
        .fetch_add(1, Ordering::Relaxed);
    let _ = connection.shutdown(std::net::Shutdown::Both);
}

/// Closes a connection whose packet came too slowly (counted in
/// [`TcpStats::stalled_packets`]), for its answering thread too.
fn close_stalled(receiving: &Receiving, connection: &TcpStream) {
    receiving
        .stats
        .stalled_packets
        .fetch_add(1, Ordering::Relaxed);
    let _ = connection.shutdown(Shutdown::Both);
}

/// Encodes everything queued into one buffer: a batch, written with one call.
fn batch(first: Packet, rx: &Receiver<Packet>, session: &mut Option<Session>, buf: &mut Vec<u8>) {
    buf.clear();
    let mut next = Some(first);
    while let Some(p) = next {
        // A packet too large to encode is dropped; the protocol never builds one.
        let _ = auth::encode(session.as_mut(), &p, buf);
        next = if buf.len() < (1 << 20) {
            rx.try_recv().ok()
        } else {
            None
        };
    }
}

/// Writes a connection's answers, tagged by `session` (with a key). A client that does not
/// take its answers (a write timed out) loses its connection: the reader stops too, instead
/// of taking requests whose answers go nowhere.
fn write_replies(mut stream: TcpStream, rx: &Receiver<Packet>, mut session: Option<Session>) {
    let mut buf = Vec::new();
    while let Ok(first) = rx.recv() {
        batch(first, rx, &mut session, &mut buf);
        if stream.write_all(&buf).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// A client of a node over TCP: writes and status requests, one at a time.
#[derive(Debug)]
pub struct TcpClient {
    stream: TcpStream,
    buf: Vec<u8>,
    next_request: u64,
    auth: Option<AuthKey>,
    /// With a key, once the handshake is done: the tags of requests, and of answers.
    sessions: Option<(Session, Session)>,
    /// An earlier call failed part-way (its handshake, its write, a bad answer): what the
    /// connection holds is unknown, so later calls are refused.
    broken: bool,
}

impl TcpClient {
    /// Connects to a node. Send the first request within the node's
    /// [`TcpConfig::idle_timeout`]: until a connection has sent one, the node closes it when it
    /// stays silent that long (after one, never).
    ///
    /// # Errors
    ///
    /// The connection's error.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            next_request: 0,
            auth: None,
            sessions: None,
            broken: false,
        })
    }

    /// Authenticates requests and answers with `key`: the replica set's clients' key
    /// ([`TcpConfig::client_auth`]), or without one, its members' ([`TcpConfig::auth`]). Set
    /// it before the first request. A node without a key sends no challenge for the first
    /// request to read, so that request times out.
    #[must_use]
    pub fn with_auth(mut self, key: AuthKey) -> Self {
        self.auth = Some(key);
        self
    }

    /// Sends a request packet built around a fresh request id, and waits up to `timeout` for
    /// the answer to it. An answer that does not come in time may still come: a later call
    /// skips it.
    ///
    /// # Errors
    ///
    /// I/O errors (a timeout is [`std::io::ErrorKind::WouldBlock`] or `TimedOut`),
    /// [`std::io::ErrorKind::InvalidInput`] for a request too large to send, and
    /// [`std::io::ErrorKind::InvalidData`] for a bad frame. After a timeout while waiting for
    /// the answer, or a request too large to send, the client can be used again; after any
    /// other error (in the handshake, a write, a read, a bad frame) the connection cannot be
    /// trusted, and later calls fail with [`std::io::ErrorKind::NotConnected`]: connect again.
    pub fn call(
        &mut self,
        build: impl FnOnce(u64) -> Packet,
        timeout: Duration,
    ) -> std::io::Result<Packet> {
        if self.broken {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "an earlier call failed part-way: connect again",
            ));
        }
        self.stream.set_write_timeout(Some(timeout))?;
        self.stream.set_read_timeout(Some(timeout))?;
        if let (Some(key), None) = (&self.auth, &self.sessions) {
            let sessions = handshake(&mut self.stream, key).map_err(|e| self.broke(e))?;
            self.sessions = Some(sessions);
        }
        let request = self.next_request;
        self.next_request += 1;
        let (requests, mut answers) = match &mut self.sessions {
            Some((requests, answers)) => (Some(requests), Some(answers)),
            None => (None, None),
        };
        // Counted by its session only once encoded.
        let mut out = Vec::new();
        auth::encode(requests, &build(request), &mut out)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if let Err(e) = self.stream.write_all(&out) {
            return Err(self.broke(e));
        }
        let mut chunk = [0u8; 16 << 10];
        loop {
            match auth::decode(answers.as_deref_mut(), &self.buf, MAX_PACKET) {
                Ok((packet, used)) => {
                    self.buf.drain(..used);
                    let answered = match &packet {
                        Packet::WriteResult { request: r, .. }
                        | Packet::Status { request: r, .. } => *r,
                        _ => continue,
                    };
                    if answered == request {
                        return Ok(packet);
                    }
                }
                Err(FrameError::Incomplete { .. }) => match self.stream.read(&mut chunk) {
                    Ok(0) => return Err(self.broke(std::io::ErrorKind::UnexpectedEof.into())),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if is_timeout(&e) => return Err(e),
                    Err(e) => return Err(self.broke(e)),
                },
                Err(e) => {
                    let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    return Err(self.broke(e));
                }
            }
        }
    }

    /// Refuses later calls, and passes `e` on.
    fn broke(&mut self, e: std::io::Error) -> std::io::Error {
        self.broken = true;
        e
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A client's side of a keyed connection's opening: reads the node's challenge and sends a
/// hello; returns the sessions of requests and of answers.
fn handshake(stream: &mut TcpStream, key: &AuthKey) -> std::io::Result<(Session, Session)> {
    let opening = auth::open(stream, key, None)?;
    stream.write_all(&opening.hello)?;
    Ok((opening.requests, opening.answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_are_probed_once_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let config = TcpConfig {
            idle_timeout: Duration::from_secs(7),
            keepalive_interval: Duration::from_millis(50),
            ..TcpConfig::default()
        };
        probe_when_idle(&accepted, &config).expect("set");
        use rustix::net::sockopt;
        assert!(sockopt::socket_keepalive(&accepted).unwrap());
        assert_eq!(
            sockopt::tcp_keepidle(&accepted).unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(
            sockopt::tcp_keepintvl(&accepted).unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(sockopt::tcp_keepcnt(&accepted).unwrap(), KEEPALIVE_PROBES);
    }
}
