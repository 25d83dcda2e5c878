//! SQLite store for iamalive: one file, WAL, the embedded default
