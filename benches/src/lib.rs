//! Benchmarks (built by the benches issue).
