//! Expression evaluation benchmarks (filled in with the JIT and the cel peer).
fn main() {}
