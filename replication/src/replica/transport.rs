//! Moving packets between nodes: the [`Transport`] trait, and the in-memory network (tests,
//! one process); TCP is in [`super::tcp`].
//!
//! Transports are best effort: a packet may be lost when a link is down, and the protocol
//! retries what matters. What a transport must not do is deliver damaged bytes: the TCP
//! transport checks every frame ([`decode_packet`](super::decode_packet)) and drops the
//! connection on the first bad one.

use crossbeam_channel::{Receiver, Sender, unbounded as channel};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::types::NodeId;
use super::wire::Packet;

/// Where to send the answer to a client's request: the connection it came on.
#[derive(Debug, Clone)]
pub struct ReplyTo(Option<Sender<Packet>>);

impl ReplyTo {
    /// Nowhere (a packet from a peer node, answered by address).
    pub fn none() -> Self {
        Self(None)
    }

    /// Back on `connection`, the channel its writer takes answers from.
    pub(crate) fn connection(connection: Sender<Packet>) -> Self {
        Self(Some(connection))
    }

    /// Sends `packet` back; lost if the client went away.
    pub fn send(&self, packet: Packet) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(packet);
        }
    }
}

/// A packet that arrived, with the way back to its sender.
#[derive(Debug)]
pub struct Inbound {
    /// The packet.
    pub packet: Packet,
    /// Where answers to a client's request go.
    pub reply: ReplyTo,
}

/// Sends packets to nodes by id and receives what arrives.
pub trait Transport: Send {
    /// Sends `packet` to `to`, best effort.
    fn send(&self, to: NodeId, packet: Packet);

    /// Sends several packets, in order per destination; a transport may batch them.
    fn send_batch(&self, packets: Vec<(NodeId, Packet)>) {
        for (to, packet) in packets {
            self.send(to, packet);
        }
    }

    /// The channel packets arrive on.
    fn inbox(&self) -> &Receiver<Inbound>;

    /// The largest packet body it delivers: a [`Node`](super::Node) fits its messages to it
    /// ([`Replica::limit_packets`](super::Replica::limit_packets)). The default has no limit.
    fn max_packet(&self) -> usize {
        usize::MAX
    }

    /// Has the transport call `hook` on its own receiving thread each time it has put
    /// packets in the inbox, so that a [`Node`](super::Node) handles them on that thread
    /// instead of waking its own (a wake-up per message, tens of microseconds on a virtual
    /// machine). Returns whether it will; the default does not, and the node's thread then
    /// waits on the inbox.
    ///
    /// The hook runs the node: log writes, a sync, and this transport's own
    /// [`send`](Self::send)s. So call it from a thread that may block for that long, never
    /// from `send`, `set_on_delivery` itself or `Drop`, and do not make `Drop` wait for a
    /// receiving thread that may be inside the hook.
    fn set_on_delivery(&self, hook: DeliveryHook) -> bool {
        let _ = hook;
        false
    }
}

/// What a transport calls after delivering packets ([`Transport::set_on_delivery`]).
pub type DeliveryHook = Arc<dyn Fn() + Send + Sync>;

type Mailboxes = Arc<Mutex<HashMap<NodeId, Sender<Inbound>>>>;

/// An in-memory network: each node [`join`](Self::join)s with its id; clients
/// [`request`](Self::request) nodes directly. Links can be cut to test partitions.
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    mailboxes: Mailboxes,
    cut: Arc<Mutex<std::collections::HashSet<(NodeId, NodeId)>>>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches node `id`, replacing an earlier attachment (a restart).
    pub fn join(&self, id: NodeId) -> MemoryTransport {
        let (tx, rx) = channel();
        self.mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        MemoryTransport {
            id,
            network: self.clone(),
            inbox: rx,
        }
    }

    /// Sends a client's request to node `to`; its answers arrive on the returned receiver.
    pub fn request(&self, to: NodeId, packet: Packet) -> Receiver<Packet> {
        let (tx, rx) = channel();
        self.deliver(
            to,
            Inbound {
                packet,
                reply: ReplyTo(Some(tx)),
            },
        );
        rx
    }

    /// Cuts (`up == false`) or restores the link from `from` to `to`.
    pub fn set_link(&self, from: NodeId, to: NodeId, up: bool) {
        let mut cut = self.cut.lock().unwrap_or_else(PoisonError::into_inner);
        if up {
            cut.remove(&(from, to));
        } else {
            cut.insert((from, to));
        }
    }

    fn deliver(&self, to: NodeId, inbound: Inbound) {
        let boxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = boxes.get(&to) {
            let _ = tx.send(inbound);
        }
    }
}

/// A node's attachment to a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    id: NodeId,
    network: MemoryNetwork,
    inbox: Receiver<Inbound>,
}

impl Transport for MemoryTransport {
    fn send(&self, to: NodeId, packet: Packet) {
        let cut = self
            .network
            .cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(self.id, to));
        if !cut {
            self.network.deliver(
                to,
                Inbound {
                    packet,
                    reply: ReplyTo::none(),
                },
            );
        }
    }

    fn inbox(&self) -> &Receiver<Inbound> {
        &self.inbox
    }
}
