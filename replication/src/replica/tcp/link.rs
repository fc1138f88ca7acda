//! One outgoing connection to a peer, kept connected by its own thread.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::io::{IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{TcpConfig, TcpStats};
use crate::replica::types::NodeId;
use crate::replica::wire::{Packet, encode_packet};

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
    pub(super) fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut from = 0;
        let mut slices = Vec::with_capacity(2 * self.frames.len());
        for &(head_end, frames) in &self.frames {
            slices.push(IoSlice::new(&self.heads[from..head_end]));
            slices.push(IoSlice::new(frames));
            from = head_end;
        }
        slices
    }
}

/// One outgoing connection to a peer. The sender writes to it directly (no thread hop on
/// the message path); a connector thread makes and remakes the connection, sends what was
/// queued while it connected, and sends keepalives when the link is quiet. Direct writes
/// cannot pile up: followers pull, so at most one fetch answer per follower is ever
/// outstanding, and a write that blocks past the write timeout drops the connection.
#[derive(Debug)]
pub(super) struct Link {
    state: Mutex<LinkState>,
    wake: Sender<()>,
}

#[derive(Debug, Default)]
struct LinkState {
    stream: Option<TcpStream>,
    /// Bytes sent while connecting, written first once connected.
    pending: Vec<u8>,
    /// Whether packets went out since the connector last looked: if not, it sends a keepalive.
    sent: bool,
}

/// The most bytes queued for a peer while connecting; beyond it, packets are dropped.
const MAX_PENDING: usize = 4 << 20;

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
            .spawn(move || connect_loop(addr, &connector, &woken, &config, &stats, &stop))?;
        Ok(link)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self, parts: &mut [IoSlice<'_>], stats: &TcpStats) {
        let mut state = self.lock();
        state.sent |= parts.iter().any(|p| !p.is_empty());
        self.write_locked(&mut state, parts, stats);
    }

    /// A keepalive, if nothing was written since the last call.
    fn keep_alive(&self, keepalive: &[u8], stats: &TcpStats) {
        let mut state = self.lock();
        if !std::mem::take(&mut state.sent) && state.stream.is_some() {
            self.write_locked(&mut state, &mut [IoSlice::new(keepalive)], stats);
        }
    }

    fn write_locked(&self, state: &mut LinkState, parts: &mut [IoSlice<'_>], stats: &TcpStats) {
        match &mut state.stream {
            Some(s) => {
                if write_all_vectored(s, parts).is_err() {
                    // Dropped: the protocol resends what matters over the next connection.
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    state.stream = None;
                    let _ = self.wake.try_send(());
                }
            }
            None => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                if state.pending.len() + len <= MAX_PENDING {
                    parts
                        .iter()
                        .for_each(|p| state.pending.extend_from_slice(p));
                } else {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let _ = self.wake.try_send(());
            }
        }
    }
}

/// Writes every byte of `parts` (`Write::write_all_vectored` is not stable yet).
fn write_all_vectored(w: &mut impl Write, mut parts: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0); // skips empty slices
    while !parts.is_empty() {
        match w.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Keeps a link connected: connects at once, and again with exponential backoff whenever
/// the connection is found broken; a failed attempt drops what was queued for it.
fn connect_loop(
    addr: SocketAddr,
    link: &Link,
    woken: &Receiver<()>,
    config: &TcpConfig,
    stats: &TcpStats,
    stop: &AtomicBool,
) {
    let mut backoff = config.min_backoff;
    let mut keepalive = Vec::new();
    encode_packet(&Packet::Keepalive, &mut keepalive).expect("a keepalive is a few bytes");
    let mut next_keepalive = Instant::now() + config.keepalive_interval;
    while !stop.load(Ordering::Relaxed) {
        if link.lock().stream.is_some() {
            let wait = next_keepalive.saturating_duration_since(Instant::now());
            match woken.recv_timeout(wait.min(Duration::from_millis(200))) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_keepalive {
                link.keep_alive(&keepalive, stats);
                next_keepalive = Instant::now() + config.keepalive_interval;
            }
            continue;
        }
        let attempt = TcpStream::connect_timeout(&addr, config.connect_timeout).and_then(|s| {
            s.set_nodelay(true)?;
            s.set_write_timeout(Some(config.write_timeout))?;
            Ok(s)
        });
        let mut state = link.lock();
        match attempt {
            Ok(mut s) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                let pending = std::mem::take(&mut state.pending);
                if s.write_all(&pending).is_ok() {
                    state.stream = Some(s);
                    backoff = config.min_backoff;
                }
            }
            Err(_) => {
                if !state.pending.is_empty() {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    state.pending.clear();
                }
                drop(state);
                std::thread::sleep(backoff);
                // At least a millisecond: a zero `min_backoff` doubled stays zero, a spin.
                backoff = (backoff * 2)
                    .max(Duration::from_millis(1))
                    .min(config.max_backoff);
            }
        }
    }
}
