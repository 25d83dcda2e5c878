//! iamalive on Redis with webhook notices: HA across monitors

fn main() {}
