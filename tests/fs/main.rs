//! The filesystem core (`CosFs`) over the in-memory store, no kernel: operations and
//! their errors, and the durability model run over a fault-injecting client.

#[path = "../support/model.rs"]
mod model;

mod durability_model;
mod operations;
