//! Environments: catalog, cache and local builds (being written).
