//! Figures of the machine itself, measured in the same run as the tables they explain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Round trips run before the timed ones: the echo thread is new, and until the scheduler
/// runs it beside this one the first trips wait for it (measured here: untimed warm-up left
/// out, a 20,000-trip probe read 60-2,200 ns; after 2,000 warm-up trips, 42-49 ns).
const WARM_UP_TRIPS: u64 = 2_000;

/// Nanoseconds for two threads to pass one cache line there and back (each spins on an
/// atomic until the other has written it), averaged over `trips` round trips after
/// 2,000 untimed ones, which give the new echo thread time to be scheduled.
///
/// On a virtual machine the two cores a process runs on can be near each other one minute
/// and far apart the next (on the VM these benchmarks ran on: 41-53 ns, or 355-515 ns), and
/// every shared cache's two-thread throughput moves with it: taken beside a measurement, this
/// figure says which kind of minute it had.
pub fn line_round_trip_ns(trips: u64) -> f64 {
    let line = Arc::new(AtomicU64::new(0));
    let total = WARM_UP_TRIPS + trips.max(1);
    let echo = {
        let line = Arc::clone(&line);
        std::thread::spawn(move || {
            for i in 0..total {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    let mut start = Instant::now();
    for i in 0..total {
        if i == WARM_UP_TRIPS {
            start = Instant::now();
        }
        line.store(2 * i + 1, Ordering::Release);
        while line.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / trips.max(1) as f64;
    echo.join().expect("the echo thread does not panic");
    ns
}

/// A cache line's round trip between two threads' cores (see [`line_round_trip_ns`]) at or
/// above which the cores count as far apart: this VM's two cores measured 41-53 ns apart at
/// times and 355-515 ns at others, in spells of seconds to a minute or more, and two-thread
/// get-or-insert of shardkit-cache and quick_cache ran at 14-21 M ops/s on near cores (all but
/// one of 202 samples) and 4.3-5.3 on far ones (Zipf 0.7, scratch runs alternated with probes).
pub const FAR_NS: f64 = 150.0;

/// Timed round trips in each probe around a sample: about a millisecond on near cores.
pub const PROBE_TRIPS: u64 = 20_000;

/// Runs `sample` between two probes of how far apart the cores are: its result, and whether
/// either probe read [`FAR_NS`] or more (a spell can begin or end within a sample, so this is
/// approximate).
pub fn between_probes<T>(sample: impl FnOnce() -> T) -> (T, bool) {
    let before = line_round_trip_ns(PROBE_TRIPS);
    let result = sample();
    let after = line_round_trip_ns(PROBE_TRIPS);
    (result, before >= FAR_NS || after >= FAR_NS)
}
