//! The sharded, replicated, cached key-value service the demo runs: slots on a hash ring, a
//! replica set per slot, a read cache per node, HTTP/JSON on each node.

mod client;
mod cluster;
pub(crate) mod demo;
pub(crate) mod layout;
pub(crate) mod node;
mod scan;
mod slot;
