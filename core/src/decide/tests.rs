//! Unit tests of every transition, to the millisecond.
