//! Redis store for iamalive: many monitors, one region
