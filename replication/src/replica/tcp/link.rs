//! One outgoing connection to a peer, kept connected by its own thread.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use std::io::{IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::auth::{self, Opening, Session, TAG_LEN};
use super::{TcpConfig, TcpStats};
use crate::replica::types::NodeId;
use crate::replica::wire::{Packet, encode_packet_head};

/// What one peer is sent in one go: per packet, in order, its encoded head and the record
/// frames after it, written from the packet itself (one vectored write, no copy of the
/// records).
pub(super) struct PeerWrite<'p> {
    pub(super) to: NodeId,
    /// The packets' heads, one after another.
    pub(super) heads: Vec<u8>,
    /// Per packet: where its head ends in `heads`, and its record frames.
    pub(super) frames: Vec<(usize, &'p [u8])>,
}

impl PeerWrite<'_> {
    /// Each packet's head and record frames, in order.
    fn packets(&self) -> impl Iterator<Item = [&[u8]; 2]> + Clone {
        let starts = std::iter::once(0).chain(self.frames.iter().map(|&(end, _)| end));
        starts
            .zip(&self.frames)
            .map(|(from, &(end, frames))| [&self.heads[from..end], frames])
    }
}

/// One outgoing connection to a peer. The sender writes to it directly (no thread hop on
/// the message path), but never waits for the peer: what the socket does not take at once is
/// queued, and the link's own thread writes it, with the sends that come meanwhile queued
/// behind it. So a slow or frozen peer holds up no one but its own link: not the node (which
/// sends under its lock), nor the other peers of the same batch. That thread also makes and
/// remakes the connection, sends what was queued while it connected, and sends keepalives
/// when the link is quiet.
pub(super) struct Link {
    state: Mutex<LinkState>,
    wake: Sender<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Link")
            .field("connected", &state.stream.is_some())
            .field("queued_bytes", &state.queued.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct LinkState {
    /// Shared with the link's thread, which writes the queue outside the lock.
    stream: Option<Arc<TcpStream>>,
    /// Tags the connection's packets, with a key ([`TcpConfig::auth`]).
    session: Option<Session>,
    /// Bytes for the link's thread to write, in order: packets sent while it connected or
    /// while earlier bytes were queued, and the rest of a packet the socket took only part of.
    /// While not connected, whole packets without their tags, which need the next
    /// connection's nonce.
    queued: Vec<u8>,
    /// While not connected: where each packet in `queued` ends.
    held: Vec<usize>,
    /// The link's thread is writing bytes it took from `queued`: sends queue behind them.
    flushing: bool,
    /// Whether packets went out since the connector last looked: if not, it sends a keepalive.
    sent: bool,
}

/// The most bytes of whole packets queued for a peer; beyond it, packets are dropped (a slow
/// peer so loses some, which the protocol fetches again). The rest of a batch the socket took
/// part of is queued whatever its size: the connection's stream needs the rest of the packet
/// it cut, and the batch is at most what one call sends one peer.
const MAX_QUEUED: usize = 4 << 20;

/// Slices per `sendmsg` (Linux refuses more than `IOV_MAX`, 1024).
const MAX_SLICES: usize = 1024;

/// Sends that return at once, whatever the socket's buffer holds (and raise no `SIGPIPE` where
/// the platform allows asking; Rust programs ignore it anyway).
#[cfg(not(target_vendor = "apple"))]
const SEND_NOW: SendFlags = SendFlags::DONTWAIT.union(SendFlags::NOSIGNAL);
#[cfg(target_vendor = "apple")]
const SEND_NOW: SendFlags = SendFlags::DONTWAIT;

impl Link {
    /// A link to `peer` at `addr`, with its connector thread started.
    pub(super) fn start(
        peer: NodeId,
        addr: SocketAddr,
        config: &TcpConfig,
        stats: &Arc<TcpStats>,
        stop: &Arc<AtomicBool>,
    ) -> std::io::Result<Arc<Self>> {
        // One pending wake-up is enough: the connector looks at the whole link when woken.
        let (wake, woken) = crossbeam_channel::bounded(1);
        let link = Arc::new(Link {
            state: Mutex::new(LinkState::default()),
            wake,
        });
        let (stats, stop, config) = (Arc::clone(stats), Arc::clone(stop), config.clone());
        let connector = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("shardkit-link-{peer}"))
            .spawn(move || connect_loop(peer, addr, &connector, &woken, &config, &stats, &stop))?;
        Ok(link)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self, w: &PeerWrite<'_>, stats: &TcpStats) {
        let mut state = self.lock();
        state.sent |= !w.frames.is_empty();
        self.write_locked(&mut state, w.packets(), stats);
    }

    /// A keepalive, if nothing was written since the last call.
    fn keep_alive(&self, keepalive: &[u8], stats: &TcpStats) {
        let mut state = self.lock();
        if !std::mem::take(&mut state.sent) && state.stream.is_some() {
            self.write_locked(&mut state, std::iter::once([keepalive, &[]]), stats);
        }
    }

    /// Sends `packets` (each a head and its record frames) now, as far as the socket takes
    /// them without waiting, and queues the rest for the link's thread.
    fn write_locked<'a>(
        &self,
        state: &mut LinkState,
        packets: impl Iterator<Item = [&'a [u8]; 2]> + Clone,
        stats: &TcpStats,
    ) {
        let len: usize = packets.clone().flatten().map(<[u8]>::len).sum();
        if state.stream.is_none() {
            let _ = self.wake.try_send(());
            // Held for the next connection, which tags them.
            if state.queued.len() + len <= MAX_QUEUED {
                for packet in packets {
                    packet
                        .iter()
                        .for_each(|p| state.queued.extend_from_slice(p));
                    state.held.push(state.queued.len());
                }
            } else {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let mark = state.session.as_ref().map(Session::mark);
        let tags: Vec<[u8; TAG_LEN]> = match &mut state.session {
            Some(session) => packets.clone().map(|p| session.tag(&p)).collect(),
            None => Vec::new(),
        };
        let mut slices = Vec::new();
        for (i, [head, frames]) in packets.enumerate() {
            slices.extend([IoSlice::new(head), IoSlice::new(frames)]);
            if let Some(tag) = tags.get(i) {
                slices.push(IoSlice::new(tag));
            }
        }
        let mut parts = &mut slices[..];
        if let (Some(stream), false) = (&state.stream, state.flushing || !state.queued.is_empty()) {
            match send_now(stream, &mut parts) {
                Ok(_) if parts.is_empty() => return,
                // The socket took part of a packet: the rest must follow on this connection.
                Ok(sent) if sent > 0 => {
                    parts.iter().for_each(|p| state.queued.extend_from_slice(p));
                    let _ = self.wake.try_send(());
                    return;
                }
                // Nothing taken: whole packets, queued as any others below.
                Ok(_) => {}
                Err(_) => {
                    // Dropped: the protocol resends what matters over the next connection.
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    state.disconnect(stats);
                    let _ = self.wake.try_send(());
                    return;
                }
            }
        }
        let _ = self.wake.try_send(());
        if state.queued.len() + len + TAG_LEN * tags.len() <= MAX_QUEUED {
            parts.iter().for_each(|p| state.queued.extend_from_slice(p));
        } else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            // Never sent: their numbers go to the next packets.
            if let (Some(session), Some(mark)) = (&mut state.session, mark) {
                session.rewind(mark);
            }
        }
    }

    /// Writes what is queued, outside the lock, until nothing is (sends meanwhile queue
    /// behind it, keeping their order); on a write error, drops the connection.
    fn flush(&self, stats: &TcpStats) {
        let mut buf = Vec::new();
        loop {
            let stream = {
                let mut state = self.lock();
                // Not connected: the queue waits for the next connection.
                let stream = state.stream.clone().filter(|_| !state.queued.is_empty());
                state.flushing = stream.is_some();
                let Some(stream) = stream else { return };
                // The emptied buffer goes back, keeping its allocation for the next queue,
                // unless a long stall made it large.
                if buf.capacity() > MAX_QUEUED {
                    buf = Vec::new();
                }
                buf.clear();
                std::mem::swap(&mut buf, &mut state.queued);
                stream
            };
            if (&*stream).write_all(&buf).is_err() {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.lock().disconnect(stats);
                return;
            }
        }
    }

    /// Takes a new connection (with a key, and its `opening`). What was held meanwhile goes
    /// first, after the hello.
    fn connected(&self, stream: TcpStream, opening: Option<Opening>) {
        let mut state = self.lock();
        let held = std::mem::take(&mut state.queued);
        let ends = std::mem::take(&mut state.held);
        let mut session = None;
        if let Some(Opening {
            requests: mut tagging,
            hello,
            ..
        }) = opening
        {
            state.queued = hello;
            let mut from = 0;
            for end in ends {
                let tag = tagging.tag(&[&held[from..end]]);
                state.queued.extend_from_slice(&held[from..end]);
                state.queued.extend_from_slice(&tag);
                from = end;
            }
            session = Some(tagging);
        } else {
            state.queued = held;
        }
        state.stream = Some(Arc::new(stream));
        state.session = session;
    }
}

impl LinkState {
    /// Drops the connection after a failed write. What is queued behind that write is whole
    /// packets: without a key they wait for the next connection; with one they were tagged
    /// for this one, and are dropped with it.
    fn disconnect(&mut self, stats: &TcpStats) {
        if self.session.take().is_some() {
            self.drop_queued(stats);
        }
        self.stream = None;
        self.flushing = false;
    }

    /// Drops what is queued or held.
    fn drop_queued(&mut self, stats: &TcpStats) {
        if !self.queued.is_empty() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.queued.clear();
        self.held.clear();
    }
}

/// Sends as much of `parts` as the socket takes without waiting, advancing `parts` past it;
/// returns how many bytes that was.
fn send_now(stream: &TcpStream, parts: &mut &mut [IoSlice<'_>]) -> std::io::Result<usize> {
    IoSlice::advance_slices(parts, 0); // skips empty slices
    let mut sent = 0;
    while !parts.is_empty() {
        let mut no_control = SendAncillaryBuffer::default();
        let some = &parts[..parts.len().min(MAX_SLICES)];
        match rustix::net::sendmsg(stream, some, &mut no_control, SEND_NOW) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                sent += n;
                IoSlice::advance_slices(parts, n);
            }
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// Keeps a link connected: connects at once, and again with exponential backoff whenever
/// the connection is found broken; a failed attempt drops what was queued for it. Writes what
/// sends queued.
fn connect_loop(
    peer: NodeId,
    addr: SocketAddr,
    link: &Link,
    woken: &Receiver<()>,
    config: &TcpConfig,
    stats: &TcpStats,
    stop: &AtomicBool,
) {
    let mut backoff = config.min_backoff;
    // Untagged: the connection's session tags it.
    let mut keepalive = Vec::new();
    let version = auth::version(config.auth.is_some());
    encode_packet_head(&Packet::Keepalive, &mut keepalive, version)
        .expect("a keepalive is a few bytes");
    let mut next_keepalive = Instant::now() + config.keepalive_interval;
    while !stop.load(Ordering::Relaxed) {
        if link.lock().stream.is_some() {
            let wait = next_keepalive.saturating_duration_since(Instant::now());
            match woken.recv_timeout(wait.min(Duration::from_millis(200))) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            link.flush(stats);
            if Instant::now() >= next_keepalive {
                link.keep_alive(&keepalive, stats);
                next_keepalive = Instant::now() + config.keepalive_interval;
            }
            continue;
        }
        match connect(peer, addr, config) {
            Ok((stream, handshake)) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                link.connected(stream, handshake);
                backoff = config.min_backoff;
                // What was held while connecting goes first.
                link.flush(stats);
            }
            Err(_) => {
                // What was held for this attempt is dropped.
                link.lock().drop_queued(stats);
                std::thread::sleep(backoff);
                // At least a millisecond: a zero `min_backoff` doubled stays zero, a spin.
                backoff = (backoff * 2)
                    .max(Duration::from_millis(1))
                    .min(config.max_backoff);
            }
        }
    }
}

/// Connects to `peer` at `addr`; with a key, reads the node's challenge and returns the
/// session that tags packets for the connection and the hello to open it with.
fn connect(
    peer: NodeId,
    addr: SocketAddr,
    config: &TcpConfig,
) -> std::io::Result<(TcpStream, Option<Opening>)> {
    let mut stream = TcpStream::connect_timeout(&addr, config.connect_timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(config.write_timeout))?;
    let Some(key) = &config.auth else {
        return Ok((stream, None));
    };
    stream.set_read_timeout(Some(config.connect_timeout))?;
    let opening = auth::open(&mut stream, key, Some(peer))?;
    Ok((stream, Some(opening)))
}
