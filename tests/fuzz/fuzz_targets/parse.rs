//! Fuzz target: the parser must never panic, whatever bytes it is given, and every
//! diagnostic must point inside the input.

#![no_main]

use flow_grammar::{FileId, decode_source, parse, tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = match decode_source(FileId(0), data) {
        Ok(text) => text,
        Err((lossy, _diagnostic)) => lossy,
    };
    let joined: String = tokens::lex(&text).iter().map(|t| t.text(&text)).collect();
    assert_eq!(joined, text, "the lexer must be lossless");
    let (_, diagnostics) = parse(FileId(0), &text);
    for d in diagnostics {
        assert!(d.span.start <= d.span.end && d.span.end as usize <= text.len());
    }
});
