//! The `accel` command line: subcommands ([`commands`]), result formatting ([`output`]),
//! load progress ([`progress`]) and the out-of-tree engine template ([`template`]). The binary
//! (`src/main.rs`) parses arguments and calls in here.
//!
//! Depends on the host library; nothing in the library depends on it.

pub mod commands;
pub mod output;
pub mod progress;
pub mod template;
