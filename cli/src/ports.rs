//! Loopback ports for nodes run as separate processes on this machine. Also compiled into the
//! failover test (`tests/failover.rs`), which starts such processes itself.

use std::net::TcpListener;

/// The ports the kernel hands out for outgoing connections (`ip_local_port_range`).
fn ephemeral_ports() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// The first of a run of `count` consecutive free loopback ports, from a seeded starting
/// point, outside the ephemeral range. A port picked inside it could be taken by an outgoing
/// connection (a node's, connecting to a peer not yet listening) before the process meant to
/// listen on it binds it, or while a killed node is down.
pub(crate) fn free_port_run(count: u32, seed: u64) -> Result<u16, String> {
    let (low, high) = ephemeral_ports();
    // Below the ephemeral range if a run fits there, else above it; `last` is the highest
    // first port whose run still ends at 65,535 or below.
    let (first, last) = if low > 10_000 + count {
        (10_000, low - count)
    } else {
        (high + 1, 65_536u32.saturating_sub(count))
    };
    if first > last {
        return Err(format!(
            "no room for {count} loopback ports outside the ephemeral range ({low}-{high})"
        ));
    }
    let mut pick = seed;
    for _ in 0..50 {
        pick = pick
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let base = first + ((pick >> 33) % u64::from(last.saturating_sub(first).max(1))) as u32;
        let ports = base..base + count;
        let free = ports
            .clone()
            .all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok());
        if free {
            return Ok(base as u16);
        }
    }
    Err("no run of free loopback ports found".into())
}
