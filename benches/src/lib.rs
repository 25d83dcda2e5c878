//! Benchmarks and the load harness for iamalive
