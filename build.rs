//! Links the `flow` binary as a position-dependent executable on Linux.
//!
//! A position-independent `flow` spends about 1.2 ms of every start applying some 71,000
//! relocations and copying the 1.7 MB of pointers they touch (`.data.rel.ro`), which is
//! most of what separates a `flow run` process from its goal (docs/performance.md,
//! "Start"). Linked at a fixed address the loader has about 200 relocations left. The
//! cost: the executable's own image is not placed at a random address (its libraries,
//! stack, heap and mappings still are). `FLOW_LINK_PIE=1` at build time keeps the
//! position-independent link for those who prefer that trade.

fn main() {
    println!("cargo:rerun-if-env-changed=FLOW_LINK_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let gnu_or_musl = matches!(
        std::env::var("CARGO_CFG_TARGET_ENV").as_deref(),
        Ok("gnu") | Ok("musl")
    );
    let pie = std::env::var("FLOW_LINK_PIE").is_ok_and(|v| v == "1");
    if linux && gnu_or_musl && !pie {
        println!("cargo:rustc-link-arg-bin=flow=-no-pie");
    }
}
