//! Checking and lowering a large program: 500 workflows of 20 steps each (about 10,000
//! lines) over stdlib integrations, from source text to the IR.
//!
//! `cargo bench -p flow-compiler --bench check`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A program of `workflows` workflows with 20 steps each, reading each other's results,
/// with `if`, `for` and `try` blocks, modifiers and a typed return.
pub fn generated_program(workflows: usize) -> String {
    let mut src = String::from(
        "import slack\nimport github\nimport jira\n\ntype Input = { owner: string, repo: string, number: int, channel: string }\n\n",
    );
    for w in 0..workflows {
        // 20 lines and 20 steps per workflow.
        src.push_str(&format!(
            "workflow flow_{w}(input: Input) -> {{ count: int, url: string }} {{\n"
        ));
        src.push_str(
            "  settings { timeout = 10m  retry = { attempts: 3, delay: 1s, backoff: 2.0 } }\n",
        );
        src.push_str("  step issue = github.get_issue(owner: input.owner, repo: input.repo, issue_number: input.number)\n");
        for s in 1..=11 {
            let prev = if s == 1 {
                "issue.number".to_owned()
            } else {
                format!("p{}.status", s - 1)
            };
            src.push_str(&format!("  step p{s} = http.get(url: \"https://api.example.com/{w}/{s}?prev=${{{prev}}}\") timeout 10s\n"));
        }
        src.push_str(
            "  let total = [p1.status, p2.status, p3.status, p4.status].sum() + p11.status\n",
        );
        src.push_str("  if total > 400 { step alert = slack.post_message(channel: input.channel, text: \"total ${total} for ${issue.title}\") }\n");
        src.push_str("  for label in issue.labels parallel 4 { step labelled = http.get(url: \"https://api.example.com/labels/${label.name}?s=${p10.status}\") }\n");
        src.push_str("  try { step ticket = jira.create_issue(project: \"OPS\", issue_type: \"Task\", summary: issue.title) retry 2 delay 1s idempotency_key \"t-${input.number}\" } catch err { notify slack input.channel \"failed: ${err.message}\" }\n");
        src.push_str("  step done = slack.post_message(channel: input.channel, text: \"${labelled.size()} labels, ${alert?.ts ?? \"none\"}\")\n");
        src.push_str("  step closed = github.create_comment(owner: input.owner, repo: input.repo, issue_number: input.number, body: \"done ${done.ts}\")\n");
        src.push_str("  return { count: labelled.size() + total, url: ticket?.self ?? closed.html_url }\n}\n");
    }
    src
}

fn bench(c: &mut Criterion) {
    let src = generated_program(500);
    let (_, check) = flow_compiler::compile_source("generated.flow", &src);
    assert!(
        !check.has_errors(),
        "the generated program must check clean: {:#?}",
        &check.diagnostics[..check.diagnostics.len().min(3)]
    );
    assert_eq!(check.program.workflows.len(), 500);
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    // The time until the call returns its result. Each result is freed after its own
    // iteration, outside the timing: a batch of results kept alive would time the
    // allocator fetching fresh memory instead.
    group.bench_function(
        format!("500 workflows x 20 steps ({} lines)", src.lines().count()),
        |b| {
            b.iter_batched(
                || (),
                |()| flow_compiler::compile_source("generated.flow", std::hint::black_box(&src)),
                BatchSize::PerIteration,
            )
        },
    );
    group.bench_function("parse only", |b| {
        b.iter_batched(
            || (),
            |()| flow_grammar::parse(flow_grammar::FileId(0), std::hint::black_box(&src)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
