//! The workspace's own files and binaries (the service, the example consumer), for tests
//! that run them as processes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the checkout).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_owned()
}

/// The `wallet-hub` binary, built now so that the test runs the current code.
pub fn service_binary() -> PathBuf {
    workspace_binary("wallet-hub", "wallet-hub")
}

/// The binary `bin` of the workspace package `package`, built now so that the test runs
/// the current code. `scripts/test` runs this same build before the tests, so here it
/// finds nothing to do and a cold target costs no test its time limit.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", package, "--bin", bin])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --bin {bin} failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("debug").join(bin)
}
