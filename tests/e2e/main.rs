//! End-to-end tests: each runs the real `weir` binary in a fresh temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod config;
mod crash;
mod csv_parity;
mod event_time;
mod expressions;
mod golden;
mod input;
mod json;
mod kafka;
mod malformed;
mod memory;
mod modes;
mod nats;
mod observe;
mod progress;
mod surroundings;
mod triggers;
