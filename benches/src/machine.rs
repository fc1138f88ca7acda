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
