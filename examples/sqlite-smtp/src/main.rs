//! iamalive on SQLite with SMTP notices: the zero-config main job

fn main() {}
