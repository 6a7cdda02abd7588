//! Workspace secrets and the redactor every byte leaving a workspace passes.

pub mod redactor;
