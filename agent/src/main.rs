//! The iamalive agent: sends heartbeats, remembers what failed

fn main() {}
