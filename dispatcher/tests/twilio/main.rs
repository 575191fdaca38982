//! The real `TwilioClient` against the simulator over real HTTP on loopback: what the
//! dispatcher will see from Twilio, without Twilio. No mocks: each test starts its own
//! simulator on `127.0.0.1:0`.

#![allow(clippy::unwrap_used)]

mod callbacks;
mod faults;
mod sends;
mod support;
mod transport;
