//! The editor's speed goals on a generated 5,000-line file: fresh diagnostics after an
//! edit (the analysis the server runs once the debounce has passed), completion, and
//! formatting the whole file; then the same with a statement left unfinished in the
//! middle of the file (diagnostics, typed completion, hover and definition beside it).
//!
//! Run: `cargo bench -p flow-editor --bench lsp`

use criterion::{Criterion, criterion_group, criterion_main};
use flow_editor::lsp::complete::{Names, completion};
use flow_editor::lsp::features;
use flow_editor::lsp::world::World;
use tower_lsp_server::ls_types::Uri;

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 280 workflows of 18 lines each over stdlib integrations: 5,000+ lines.
fn source() -> String {
    let mut text = String::from("import slack\nimport jira\n\n");
    for w in 0..280 {
        text.push_str(&format!(
            "/// Workflow number {w}.\nworkflow w{w}(title: string, count: int) -> {{ key: string }} {{\n  \
             step issue = jira.create_issue(project: \"SUP\", issue_type: \"Task\", summary: title)\n    \
             retry 3 delay 2s backoff 2.0\n  \
             step note = slack.post_message(channel: \"#ops\", text: \"Opened ${{issue.key}}\")\n    \
             after issue\n    timeout 30s\n  \
             let doubled = count * 2\n  let label = \"${{title}}-${{doubled}}\"\n  \
             if doubled > 10 {{\n    \
             step alert = slack.post_message(channel: \"#alerts\", text: label)\n  }}\n  \
             for i in [1, 2, 3] {{\n    \
             step each = slack.post_message(channel: \"#loop\", text: \"${{i}}\")\n  }}\n  \
             return {{ key: issue.key }}\n}}\n\n"
        ));
    }
    text
}

fn benches(c: &mut Criterion) {
    let text = source();
    assert!(
        text.lines().count() >= 5_000,
        "{} lines",
        text.lines().count()
    );
    let uri: Uri = "file:///bench/big.flow".parse().unwrap();
    let mut world = World::default();
    world.open(uri.clone(), text.clone(), 1);
    world.snapshot(&uri);

    // An edit in the middle of the file, then what the server does after the debounce.
    let middle = text.len() / 2;
    let at = middle + text[middle..].find("let doubled = count * 2").unwrap();
    let edited = format!(
        "{}let doubled = count * 3{}",
        &text[..at],
        &text[at + "let doubled = count * 2".len()..]
    );
    let mut version = 1;
    c.bench_function("diagnostics after an edit (5,000 lines)", |b| {
        b.iter(|| {
            version += 1;
            let next = if version % 2 == 0 {
                edited.clone()
            } else {
                text.clone()
            };
            world.change(&uri, next, version);
            let snapshot = world.snapshot(&uri).unwrap();
            features::diagnostics(&snapshot)
        })
    });

    // Completion after `issue.` in the middle of the file, with the edit just typed.
    let dot = middle + text[middle..].find("issue.key").unwrap() + "issue.".len();
    let typing = format!("{}{}", &text[..dot], &text[dot + "key".len()..]);
    c.bench_function("completion after an edit (5,000 lines)", |b| {
        b.iter(|| {
            version += 1;
            world.change(&uri, typing.clone(), version);
            let (text, module, last_good) = world.syntax(&uri).unwrap();
            let names = Names::new(&module, &last_good);
            completion(&text, dot, &names)
        })
    });

    // A keystroke that leaves a statement unfinished in the middle of the file
    // (`count * 2` becomes `count *`): the workflow is recovered around it.
    let broken = format!(
        "{}let doubled = count *{}",
        &text[..at],
        &text[at + "let doubled = count * 2".len()..]
    );
    c.bench_function(
        "diagnostics after a keystroke that breaks a statement (5,000 lines)",
        |b| {
            b.iter(|| {
                version += 1;
                let next = if version % 2 == 0 {
                    broken.clone()
                } else {
                    text.clone()
                };
                world.change(&uri, next, version);
                let snapshot = world.snapshot(&uri).unwrap();
                features::diagnostics(&snapshot)
            })
        },
    );

    // In the workflow with the broken statement: `issue.` typed two lines below it,
    // answered with the step's result type from the latest analysis (of the broken text).
    version += 1;
    world.change(&uri, broken.clone(), version);
    let broken_snapshot = world.snapshot(&uri).unwrap();
    let below = at + broken[at..].find("let label").unwrap();
    let typing_broken = format!("{}let k = issue.\n  {}", &broken[..below], &broken[below..]);
    let dot_broken = below + "let k = issue.".len();
    {
        world.change(&uri, typing_broken.clone(), version + 1);
        let (text, module, last_good) = world.syntax(&uri).unwrap();
        let latest = world.latest_snapshot(&uri);
        let names = Names::new(&module, &last_good).with_analysis(latest.as_deref(), &text);
        let labels: Vec<String> = completion(&text, dot_broken, &names)
            .into_iter()
            .map(|i| i.label)
            .collect();
        assert!(labels.contains(&"key".to_owned()), "{labels:?}");
        assert!(!labels.contains(&"startsWith".to_owned()), "{labels:?}");
    }
    c.bench_function(
        "typed completion beside a broken statement (5,000 lines)",
        |b| {
            b.iter(|| {
                version += 1;
                world.change(&uri, typing_broken.clone(), version);
                let (text, module, last_good) = world.syntax(&uri).unwrap();
                let latest = world.latest_snapshot(&uri);
                let names = Names::new(&module, &last_good).with_analysis(latest.as_deref(), &text);
                completion(&text, dot_broken, &names)
            })
        },
    );

    // Hover and definition on `issue` in `issue.key` of the same workflow.
    let file = broken_snapshot.file().unwrap();
    let read = at + broken[at..].find("issue.key").unwrap();
    let (line, character) = file.utf16_position(read);
    let position = tower_lsp_server::ls_types::Position::new(line as u32, character as u32);
    assert!(features::hover(&broken_snapshot, position).is_some());
    c.bench_function("hover beside a broken statement (5,000 lines)", |b| {
        b.iter(|| features::hover(&broken_snapshot, position))
    });
    c.bench_function("definition beside a broken statement (5,000 lines)", |b| {
        b.iter(|| features::definition(&broken_snapshot, position))
    });

    // Where the diagnostics time goes: the compiler alone, and its parsing part.
    c.bench_function("compile only (5,000 lines)", |b| {
        b.iter(|| {
            flow_compiler::compile_source("big.flow", &text)
                .1
                .diagnostics
                .len()
        })
    });
    c.bench_function("parse only (5,000 lines)", |b| {
        b.iter(|| {
            flow_grammar::parse(flow_grammar::FileId(0), &text)
                .0
                .items
                .len()
        })
    });

    c.bench_function("format (5,000 lines)", |b| {
        b.iter(|| flow_editor::format::format_source(&text).unwrap())
    });
}

criterion_group! {
    name = editor;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(editor);
