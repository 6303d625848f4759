//! Single-thread throughput of convert's per-image work: decode a 346×230
//! JPEG, align (estimate_norm + warp to 112×112), encode at quality 95.
//! A measurement, not a check; run with
//! `cargo test --release --test throughput -- --ignored --nocapture`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use facekit::align::{estimate_norm, warp_affine};
use facekit::imaging::{decode_jpeg, encode_jpeg, DEFAULT_MAX_PIXELS};

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`), so that a
/// loaded machine does not inflate the figure; wall time elsewhere.
fn thread_time(wall_start: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| wall_start.elapsed())
}

/// Runs `work` repeatedly for about a second of CPU time; returns the time per call.
fn per_call(mut work: impl FnMut()) -> Duration {
    let wall = Instant::now();
    let start = thread_time(wall);
    let mut calls = 0u32;
    while thread_time(wall) - start < Duration::from_secs(1) {
        for _ in 0..10 {
            work();
        }
        calls += 10;
    }
    (thread_time(wall) - start) / calls
}

#[test]
#[ignore = "a benchmark: run explicitly"]
fn decode_align_encode_per_second() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align/texture_a.png");
    let photo = image::open(fixture).unwrap().to_rgb8();
    assert_eq!(photo.dimensions(), (346, 230));
    let jpeg = encode_jpeg(&photo, 90);
    let landmarks = [
        [147.0, 99.0],
        [203.0, 99.0],
        [175.0, 131.0],
        [152.0, 164.0],
        [199.0, 164.0],
    ];

    let decoded = decode_jpeg(&jpeg, DEFAULT_MAX_PIXELS).unwrap();
    let matrix = estimate_norm(&landmarks, 112).unwrap();
    let crop = warp_affine(&decoded, &matrix, 112);
    let decode = per_call(|| drop(black_box(decode_jpeg(black_box(&jpeg), DEFAULT_MAX_PIXELS))));
    let align = per_call(|| {
        let m = estimate_norm(black_box(&landmarks), 112).unwrap();
        black_box(warp_affine(black_box(&decoded), &m, 112));
    });
    let encode = per_call(|| drop(black_box(encode_jpeg(black_box(&crop), 95))));
    let all = per_call(|| {
        let image = decode_jpeg(black_box(&jpeg), DEFAULT_MAX_PIXELS).unwrap();
        let m = estimate_norm(black_box(&landmarks), 112).unwrap();
        black_box(encode_jpeg(&warp_affine(&image, &m, 112), 95));
    });
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    println!(
        "346x230 JPEG ({} bytes) -> 112x112 crop, one thread, CPU time:",
        jpeg.len()
    );
    println!(
        "  decode          {:>8.1} us  ({:>6.0}/s)",
        decode.as_secs_f64() * 1e6,
        rate(decode)
    );
    println!(
        "  align (fit+warp){:>8.1} us  ({:>6.0}/s)",
        align.as_secs_f64() * 1e6,
        rate(align)
    );
    println!(
        "  encode q95      {:>8.1} us  ({:>6.0}/s)",
        encode.as_secs_f64() * 1e6,
        rate(encode)
    );
    println!(
        "  all three       {:>8.1} us  ({:>6.0} crops/s)",
        all.as_secs_f64() * 1e6,
        rate(all)
    );
}
