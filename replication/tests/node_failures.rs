//! A node whose log fails (a sync that errs, or panics) stops: its waiting writers hear
//! `LeadershipLost` instead of waiting for ever, and later calls say it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use shardkit_replication::replica::{
    AckLevel, MemoryNetwork, MemoryReplicaStore, Node, NodeId, Replica, ReplicaConfig, Transport,
    Write, WriteError,
};
use shardkit_replication::{Epoch, Error, LogStorage, MemoryLog, Offset};

mod support;
use support::{DiskHooks, HookedLog};

const HEALTHY: u8 = 0;
const ERRS: u8 = 1;
const PANICS: u8 = 2;

/// A disk whose syncs can be made to fail.
#[derive(Default)]
struct Faults(AtomicU8);

impl DiskHooks for Faults {
    fn sync(&self, log: &MemoryLog) -> Result<(), Error> {
        match self.0.load(Ordering::SeqCst) {
            HEALTHY => log.sync(),
            ERRS => Err(Error::Poisoned {
                reason: "the test's disk failed".into(),
            }),
            _ => panic!("the test's log panics in a sync"),
        }
    }
}

type FaultyLog = HookedLog<Faults>;

/// A one-replica node on `transport`, leading epoch 1, and its log.
fn leading(transport: impl Transport + 'static) -> (Node<FaultyLog>, Arc<FaultyLog>) {
    let id = NodeId::new(1);
    let mut config = ReplicaConfig::new(id, [id]);
    config.bootstrap = true;
    let log = Arc::new(FaultyLog::default());
    let replica = Replica::open(
        config,
        Arc::clone(&log),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open");
    let node = Node::start(replica, transport);
    node.promote(Epoch::new(1)).expect("promote");
    (node, log)
}

/// A one-replica node that leads epoch 1, with a first write acknowledged.
fn leader() -> (Node<FaultyLog>, Arc<FaultyLog>) {
    let (node, log) = leading(MemoryNetwork::new().join(NodeId::new(1)));
    node.write(Write::new(b"before".to_vec(), AckLevel::Leader))
        .expect("a healthy write");
    (node, log)
}

/// A write that needs a sync, given up on after a minute (a hang fails the test). A node
/// that stops drops its waiters' channels, which `Node::write` reports as `LeadershipLost`.
fn write_that_syncs(node: &Node<FaultyLog>) -> Result<(), WriteError> {
    match node
        .write_async(Write::new(b"after".to_vec(), AckLevel::Leader))
        .recv_timeout(Duration::from_secs(60))
    {
        Ok(outcome) => outcome.map(|_| ()),
        Err(RecvTimeoutError::Disconnected) => Err(WriteError::LeadershipLost {
            offset: Offset::new(0),
        }),
        Err(RecvTimeoutError::Timeout) => panic!("the writer was left waiting"),
    }
}

fn stops_when_syncs(fault: u8) {
    let (node, log) = leader();
    log.hooks.0.store(fault, Ordering::SeqCst);
    assert!(matches!(
        write_that_syncs(&node),
        Err(WriteError::LeadershipLost { .. })
    ));
    assert!(node.status().is_err(), "a stopped node answered");
    assert!(matches!(
        node.write(Write::new(b"later".to_vec(), AckLevel::None)),
        Err(WriteError::LeadershipLost { .. })
    ));
}

#[test]
fn a_node_whose_sync_fails_stops_and_answers_its_writers() {
    stops_when_syncs(ERRS);
}

#[test]
fn a_node_whose_log_panics_in_a_sync_stops_and_answers_its_writers() {
    stops_when_syncs(PANICS);
}

/// A TCP node whose log failed lets go of its transport at once: it stops listening (its
/// peers see it gone), and packets sent to it no longer pile up in its inbox until `stop`.
#[test]
fn a_tcp_node_whose_log_failed_stops_listening() {
    use shardkit_replication::replica::{TcpConfig, TcpTransport};
    let id = NodeId::new(1);
    let mut bound = TcpTransport::bind_loopback(&[id], TcpConfig::default()).expect("binding");
    let addr = bound.addrs[&id];
    let (node, log) = leading(bound.transports.remove(&id).expect("bound"));
    std::net::TcpStream::connect(addr).expect("listening while healthy");
    log.hooks.0.store(ERRS, Ordering::SeqCst);
    assert!(write_that_syncs(&node).is_err());
    // A deadlock detector, not a timing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(node);
}

#[test]
fn calls_after_stop_are_refused_at_once() {
    let (node, _log) = leader();
    node.stop();
    assert!(node.status().is_err());
    assert!(matches!(
        write_that_syncs(&node),
        Err(WriteError::LeadershipLost { .. })
    ));
    assert!(node.promote(Epoch::new(2)).is_err());
}

/// A coordinator that panics ends its thread, and `is_running` says so: failovers have
/// stopped, which a service must be able to see.
#[test]
fn a_coordinator_that_panics_is_seen_to_stop() {
    use shardkit_replication::replica::{Coordinator, CoordinatorNode, Message};
    struct Faulty;
    impl Coordinator for Faulty {
        fn handle(&mut self, _: Duration, _: NodeId, _: Message) {}
        fn tick(&mut self, now: Duration) {
            assert!(now < Duration::from_millis(50), "a bug in the coordinator");
        }
        fn take_outbox(&mut self) -> Vec<(NodeId, Message)> {
            Vec::new()
        }
        fn leader(&self) -> Option<(NodeId, Epoch)> {
            None
        }
        fn fail_over(&mut self, _: Duration) {}
    }
    let net = MemoryNetwork::new();
    let coordinator = CoordinatorNode::start(NodeId::new(9), Faulty, net.join(NodeId::new(9)));
    assert!(coordinator.is_running());
    // A deadlock detector, not a timing: the panic comes 50 ms in.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while coordinator.is_running() {
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}
