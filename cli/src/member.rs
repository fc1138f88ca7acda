//! `ID=HOST:PORT`: how every command names a node on the command line.

use std::net::SocketAddr;

use shardkit_replication::replica::NodeId;

/// A node's id and address, parsed from `ID=HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: NodeId,
    pub(crate) addr: SocketAddr,
}

impl std::str::FromStr for Member {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
        Ok(Self {
            id: NodeId::new(id.parse().map_err(|_| format!("bad node id {id:?}"))?),
            addr: addr
                .parse()
                .map_err(|_| format!("bad address {addr:?} (expected HOST:PORT)"))?,
        })
    }
}
