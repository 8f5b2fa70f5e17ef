//! Handlers, one module per resource.

pub mod pulses;
pub mod users;
