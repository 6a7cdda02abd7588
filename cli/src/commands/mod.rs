//! One module per command group.

pub mod doctor;
pub mod env;
pub mod run;
pub mod supervisor;
pub mod workspace;
