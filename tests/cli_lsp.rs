//! `flow lsp` as an editor runs it: the real binary on standard input and output, a
//! plain JSON-RPC client, and a workflow whose line is being typed (`let q = issues.`).
//! Hover and definition keep answering in the untouched lines, and completion after
//! `issues.` offers the list's own methods, not a string's.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    next_id: i64,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flow"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("flow lsp starts");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Server {
            child,
            input,
            output,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.input, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.input.flush().expect("flush");
    }

    fn receive(&mut self) -> Value {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.output.read_line(&mut line).expect("read");
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.output.read_exact(&mut body).expect("body");
        serde_json::from_slice(&body).expect("json")
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.receive();
            if message.get("id") == Some(&json!(id)) {
                return message["result"].clone();
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Waits for the diagnostics of a version of the document.
    fn diagnostics(&mut self) -> Value {
        loop {
            let message = self.receive();
            if message["method"] == "textDocument/publishDiagnostics" {
                return message["params"]["diagnostics"].clone();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLEAN: &str = "import github\n\nworkflow triage(repo: string) -> int {\n  step issues = github.list_issues(owner: \"acme\", repo: repo)\n  let open = issues.filter(i, i.state == \"open\")\n  return open.size()\n}\n";

#[test]
fn a_half_typed_line_leaves_the_workflow_analysed() {
    let uri = "file:///work/triage.flow";
    let mut server = Server::start();
    server.request("initialize", json!({ "capabilities": {} }));
    server.notify("initialized", json!({}));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": CLEAN } }),
    );
    assert_eq!(
        server.diagnostics(),
        json!([]),
        "the clean file checks clean"
    );
    // The new user inserts a line and stops halfway through it.
    let typing = CLEAN.replace(
        "  return open.size()",
        "  let q = issues.\n  return open.size()",
    );
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": typing }] }),
    );
    let diagnostics = server.diagnostics();
    let errors: Vec<&Value> = diagnostics
        .as_array()
        .expect("a list")
        .iter()
        .filter(|d| d["severity"] == 1)
        .collect();
    assert_eq!(errors.len(), 1, "one syntax error: {diagnostics}");
    // `issues` in the untouched `let open = issues.filter(...)` line (line 5, 0-based 4).
    let on_issues =
        json!({ "textDocument": { "uri": uri }, "position": { "line": 4, "character": 14 } });
    let definition = server.request("textDocument/definition", on_issues.clone());
    assert_eq!(definition["range"]["start"]["line"], 3, "{definition}");
    let hover = server.request("textDocument/hover", on_issues);
    let shown = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(shown.contains("list<github.Issue>"), "{hover}");
    // Completion right after `issues.` on the new line (line 6, 0-based 5).
    let items = server.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 5, "character": 17 } }),
    );
    let labels: Vec<&str> = items
        .as_array()
        .expect("a list of items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    for wanted in ["size", "filter", "map", "exists"] {
        assert!(labels.contains(&wanted), "{wanted} missing: {labels:?}");
    }
    for unwanted in ["startsWith", "charAt", "getFullYear"] {
        assert!(
            !labels.contains(&unwanted),
            "{unwanted} offered: {labels:?}"
        );
    }
    server.request("shutdown", Value::Null);
    server.notify("exit", Value::Null);
}
