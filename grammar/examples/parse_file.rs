//! Parses the files named on the command line and prints a count of items and
//! diagnostics: a small driver for profiling the parser.

fn main() {
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let (module, diagnostics) = flow_grammar::parse(flow_grammar::FileId(0), &text);
        println!(
            "{path}: {} items, {} diagnostics",
            module.items.len(),
            diagnostics.len()
        );
    }
}
