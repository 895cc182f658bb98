//! Parser throughput: a generated 10,000-line program (500 workflows of 20 steps).
//!
//! Run with `cargo bench -p flow-grammar --bench parse`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flow_grammar::{FileId, ParseCache, parse, parse_incremental, tokens};
use std::hint::black_box;

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 500 workflows × 20 steps, each step a call with arguments, modifiers on some,
/// expressions with interpolation and arithmetic: 10,000 lines in all.
fn program() -> String {
    let mut out = String::new();
    for w in 0..500 {
        out.push_str(&format!(
            "/// Workflow number {w}.\nworkflow sync_{w}(limit: int = 10) -> {{ count: int }} {{\n"
        ));
        for s in 0..20 {
            if s == 0 {
                out.push_str("  step s0 = http.get(url: \"https://api.example.com/items\", query: { \"limit\": string(limit) })\n");
            } else if s % 5 == 0 {
                out.push_str(&format!(
                    "  step s{s} = http.post(url: \"https://api.example.com/items/${{s{p}.status}}\", json: {{ n: {s} * limit }}) retry 3 delay 1s\n",
                    p = s - 1
                ));
            } else {
                out.push_str(&format!(
                    "  step s{s} = http.get(url: \"https://api.example.com/items/{s}\") after s{p}\n",
                    p = s - 1
                ));
            }
        }
        out.push_str("  return { count: s19.status + s0.status }\n}\n");
    }
    out
}

fn bench(c: &mut Criterion) {
    let source = program();
    let lines = source.lines().count();
    assert!(lines >= 10_000, "generated {lines} lines");
    let (_, diagnostics) = parse(FileId(0), &source);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(source.len() as u64));
    group.sample_size(20);
    // The time until `parse` returns the tree; each tree is freed after its own
    // iteration, outside the timing.
    group.bench_function("10k_lines", |b| {
        b.iter_batched(
            || (),
            |()| parse(FileId(0), black_box(&source)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("lex_10k_lines", |b| {
        b.iter(|| tokens::lex(black_box(&source)))
    });

    // An editor's case: one edit in the middle of the file, parsed with the cache warm
    // from the previous version (the edit alternates so every iteration changes an item).
    let middle = source.find("workflow sync_250(").unwrap_or(0);
    let edited = [
        source.clone(),
        format!(
            "{}{}",
            &source[..middle],
            source[middle..].replacen("limit: int = 10", "limit: int = 11", 1)
        ),
    ];
    let mut cache = ParseCache::new();
    let _ = parse_incremental(FileId(0), &edited[0], &mut cache);
    cache.end_round();
    let mut turn = 0;
    group.bench_function("10k_lines_after_one_edit", |b| {
        b.iter(|| {
            turn ^= 1;
            let result = parse_incremental(FileId(0), black_box(&edited[turn]), &mut cache);
            cache.end_round();
            result
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
