//! Real servers as throwaway test fixtures.

pub mod component;
pub mod net;
pub mod prosody;
