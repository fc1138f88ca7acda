//! Why a frequency sketch matters: a one-off scan of cold keys does not look popular, so TinyLFU
//! admission keeps the hot keys cached instead of replacing them with scanned ones.
//!
//! `cargo run --example scan_resistance -p shardkit-cache`

use shardkit_cache::FrequencySketch;

fn main() {
    let mut sketch = FrequencySketch::new(1_000);
    let hot: Vec<u64> = (0..50).map(|k| k * 0x9e37_79b9).collect();
    for _ in 0..10 {
        for &k in &hot {
            sketch.increment(k);
        }
    }
    // A scan touches 5,000 other keys once each.
    let scan: Vec<u64> = (1_000_000..1_005_000).collect();
    for &k in &scan {
        sketch.increment(k);
    }
    let admitted = scan
        .iter()
        .zip(hot.iter().cycle())
        .filter(|(s, h)| sketch.admit(**s, **h))
        .count();
    println!(
        "scanned keys that would evict a hot key: {admitted} of {}",
        scan.len()
    );
    assert!(admitted < scan.len() / 100);
}
