//! Figures of the machine itself, measured in the same run as the tables they explain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::stats::median;

/// Median nanoseconds for two threads to pass one cache line there and back (each spins on
/// an atomic until the other has written it), over `rounds` runs of `trips` round trips.
///
/// On a virtual machine, how far apart the two cores are can change from one minute to the
/// next, and every shared cache's two-thread throughput moves with it: this figure, taken
/// beside a table, says which kind of minute the table had.
pub fn line_round_trip_ns(rounds: usize, trips: u64) -> f64 {
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let line = Arc::new(AtomicU64::new(0));
            let echo = {
                let line = Arc::clone(&line);
                std::thread::spawn(move || {
                    for i in 0..trips {
                        while line.load(Ordering::Acquire) != 2 * i + 1 {
                            std::hint::spin_loop();
                        }
                        line.store(2 * i + 2, Ordering::Release);
                    }
                })
            };
            let start = Instant::now();
            for i in 0..trips {
                line.store(2 * i + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
            }
            let ns = start.elapsed().as_nanos() as f64 / trips.max(1) as f64;
            echo.join().expect("the echo thread does not panic");
            ns
        })
        .collect();
    median(&mut samples)
}
