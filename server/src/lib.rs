//! HTTP ingest and management API for iamalive, and the runner that drives the monitor
