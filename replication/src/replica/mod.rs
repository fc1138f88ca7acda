//! Leader-follower replication over the durable log: a sans-IO protocol core.
//!
//! See the [crate documentation](crate#replication) for the model: roles, ack levels and
//! what each guarantees, failover, and what can and cannot be lost.

mod coordinator;
mod core;
mod driver;
mod envelope;
mod error;
mod follower;
mod leader;
mod message;
mod node;
mod pending;
mod producers;
mod snapshot;
mod status;
mod store;
mod tcp;
mod transport;
mod types;
mod wire;
mod write;

pub use self::core::{Committed, Replica, SyncTicket};
pub use coordinator::{Coordinator, LeaseCoordinator};
pub use error::WriteError;
pub use message::{Message, SnapshotResume};
pub use node::{BatchOutcome, CoordinatorNode, Node, Subscription};
pub use snapshot::{Snapshot, StateMachine};
pub use status::{FollowerStatus, ReplicaStatus};
pub use store::{
    DurableState, FileReplicaStore, MemoryReplicaStore, ProducerEntry, ReplicaStore,
    StoredProducers,
};
pub use tcp::{AuthKey, LoopbackTransports, TcpClient, TcpConfig, TcpStats, TcpTransport};
pub use transport::{DeliveryHook, Inbound, MemoryNetwork, MemoryTransport, ReplyTo, Transport};
pub use types::{AckLevel, FollowerAck, NodeId, Position, ProducerSeq, ReplicaConfig, Role};
pub use wire::{MAX_PACKET, Packet, RemoteWriteError, WIRE_VERSION, decode_packet, encode_packet};
pub use write::{Completion, Write, WriteId, Written};
