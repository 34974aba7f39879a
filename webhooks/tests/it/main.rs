//! End-to-end tests of delivery and the stream hub: a real sled log, a real command writer,
//! and real HTTP receivers on 127.0.0.1:0. Time is a manual clock; nothing sleeps to wait for
//! a retry timer.

mod delivery;
mod harness;
mod stream;
