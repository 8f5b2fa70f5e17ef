//! Handlers, one module per resource.

pub mod heartbeats;
pub mod pulses;
pub mod statusbar;
pub mod users;
