//! Language server fixtures: each file under `inputs/lsp/` holds a Flow source, then a
//! line `### requests` and one request per line (`hover 12:20`, `definition 12:20`,
//! `references 3:8`, `rename 3:8 new_name`, `completion 5:14`, `signature 5:30`,
//! `symbols`, `semantic`, `format`, `diagnostics`; positions are 1-based line:column as
//! editors show them). The real server runs in-process over a pipe; the answers, made
//! readable, are snapshotted.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

struct Client {
    writer: tokio::io::WriteHalf<DuplexStream>,
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    next_id: i64,
    /// Notifications received while waiting for responses.
    notifications: Vec<Value>,
}

impl Client {
    async fn start() -> Client {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_side);
        tokio::spawn(flow_editor::lsp::serve(server_read, server_write));
        let (read, writer) = tokio::io::split(client_side);
        Client {
            writer,
            reader: BufReader::new(read),
            next_id: 1,
            notifications: Vec::new(),
        }
    }

    async fn send(&mut self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.writer.write_all(frame.as_bytes()).await.unwrap();
    }

    async fn receive(&mut self) -> Value {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        loop {
            let message = self.receive().await;
            if message.get("id") == Some(&json!(id)) {
                return message
                    .get("result")
                    .cloned()
                    .unwrap_or_else(|| json!({ "error": message["error"]["message"] }));
            }
            if message.get("method").is_some() && message.get("id").is_none() {
                self.notifications.push(message);
            }
        }
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }))
            .await;
    }

    /// Waits for the diagnostics of `uri`.
    async fn diagnostics(&mut self, uri: &str) -> Value {
        loop {
            if let Some(i) = self.notifications.iter().position(|n| {
                n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri
            }) {
                return self.notifications.remove(i)["params"]["diagnostics"].clone();
            }
            let message = self.receive().await;
            if message.get("method").is_some() {
                self.notifications.push(message);
            }
        }
    }
}

fn position(spec: &str) -> Value {
    let (line, column) = spec.split_once(':').unwrap();
    json!({ "line": line.parse::<u32>().unwrap() - 1, "character": column.parse::<u32>().unwrap() - 1 })
}

/// Makes a URI stable across machines: the stdlib copy's directory becomes `<stdlib>`.
fn stable(value: &str) -> String {
    match value.find("/flow-stdlib-") {
        Some(i) => {
            let rest = &value[i..];
            let file = rest.rsplit('/').next().unwrap_or("");
            format!("<stdlib>/{file}")
        }
        None => value.replace("file:///fixtures/", ""),
    }
}

fn range(r: &Value) -> String {
    format!(
        "{}:{}-{}:{}",
        r["start"]["line"].as_u64().unwrap() + 1,
        r["start"]["character"].as_u64().unwrap() + 1,
        r["end"]["line"].as_u64().unwrap() + 1,
        r["end"]["character"].as_u64().unwrap() + 1
    )
}

fn location(l: &Value) -> String {
    format!(
        "{} {}",
        stable(l["uri"].as_str().unwrap_or("")),
        range(&l["range"])
    )
}

fn render(method: &str, result: &Value, source: &str) -> String {
    if result.is_null() {
        return "(nothing)".into();
    }
    if let Some(error) = result.get("error") {
        return format!("error: {}", error.as_str().unwrap_or(""));
    }
    match method {
        "hover" => format!(
            "{}\n{}",
            range(&result["range"]),
            result["contents"]["value"].as_str().unwrap_or("")
        ),
        "definition" => location(result),
        "references" => result
            .as_array()
            .unwrap()
            .iter()
            .map(location)
            .collect::<Vec<_>>()
            .join("\n"),
        "rename" => {
            let mut lines = Vec::new();
            for (uri, edits) in result["changes"].as_object().unwrap() {
                for e in edits.as_array().unwrap() {
                    lines.push(format!(
                        "{} {} -> {}",
                        stable(uri),
                        range(&e["range"]),
                        e["newText"].as_str().unwrap()
                    ));
                }
            }
            lines.sort();
            lines.join("\n")
        }
        "completion" => result
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let detail = i["detail"]
                    .as_str()
                    .map(|d| format!("  — {d}"))
                    .unwrap_or_default();
                format!("{}{detail}", i["label"].as_str().unwrap())
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "signature" => {
            let s = &result["signatures"][0];
            let active = result["activeParameter"].as_u64();
            let label = s["label"].as_str().unwrap();
            let param = active
                .and_then(|a| s["parameters"].get(a as usize))
                .map(|p| {
                    let offsets = p["label"].as_array().unwrap();
                    let (a, b) = (
                        offsets[0].as_u64().unwrap() as usize,
                        offsets[1].as_u64().unwrap() as usize,
                    );
                    let utf16: Vec<u16> = label.encode_utf16().collect();
                    String::from_utf16_lossy(&utf16[a..b])
                });
            format!("{label}\nactive: {}", param.unwrap_or_else(|| "-".into()))
        }
        "symbols" => {
            fn walk(s: &Value, depth: usize, out: &mut String) {
                let detail = s["detail"]
                    .as_str()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{}{} [{}]{detail} {}",
                    "  ".repeat(depth),
                    s["name"].as_str().unwrap(),
                    s["kind"],
                    range(&s["selectionRange"])
                );
                for c in s["children"].as_array().into_iter().flatten() {
                    walk(c, depth + 1, out);
                }
            }
            let mut out = String::new();
            for s in result.as_array().unwrap() {
                walk(s, 0, &mut out);
            }
            out
        }
        "semantic" => {
            let data: Vec<u64> = result["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let types = [
                "namespace",
                "type",
                "function",
                "method",
                "parameter",
                "variable",
                "property",
                "keyword",
                "comment",
                "string",
                "number",
                "operator",
                "event",
            ];
            let lines: Vec<&str> = source.lines().collect();
            let (mut line, mut col) = (0u64, 0u64);
            let mut out = Vec::new();
            for t in data.chunks(5) {
                if t[0] > 0 {
                    line += t[0];
                    col = t[1];
                } else {
                    col += t[1];
                }
                let text: String = lines
                    .get(line as usize)
                    .map(|l| l.chars().skip(col as usize).take(t[2] as usize).collect())
                    .unwrap_or_default();
                out.push(format!(
                    "{}:{} {text:?} {} {:b}",
                    line + 1,
                    col + 1,
                    types[t[3] as usize],
                    t[4]
                ));
            }
            out.join("\n")
        }
        "format" => result
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["newText"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => serde_json::to_string_pretty(result).unwrap(),
    }
}

fn render_diagnostics(diagnostics: &Value) -> String {
    let mut out = Vec::new();
    for d in diagnostics.as_array().unwrap() {
        let severity = if d["severity"] == 1 {
            "error"
        } else {
            "warning"
        };
        out.push(format!(
            "{} {severity}[{}] {}",
            range(&d["range"]),
            d["code"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        ));
    }
    if out.is_empty() {
        "(none)".into()
    } else {
        out.join("\n")
    }
}

async fn run_fixture(path: &Path) -> String {
    let content = std::fs::read_to_string(path).unwrap();
    let (source, requests) = content
        .split_once("### requests\n")
        .expect("a fixture needs a `### requests` line");
    let uri = format!(
        "file:///fixtures/{}",
        path.file_name().unwrap().to_string_lossy()
    );
    let mut client = Client::start().await;
    client
        .request("initialize", json!({ "capabilities": {} }))
        .await;
    client.notify("initialized", json!({})).await;
    client
        .notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": source } }))
        .await;
    let opened = client.diagnostics(&uri).await;
    let mut transcript = String::new();
    for line in requests
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut words = line.split_whitespace();
        let method = words.next().unwrap();
        let doc = json!({ "uri": uri });
        let result = match method {
            "diagnostics" => {
                let _ = writeln!(transcript, "## {line}\n{}\n", render_diagnostics(&opened));
                continue;
            }
            "hover" => client.request("textDocument/hover", json!({ "textDocument": doc, "position": position(words.next().unwrap()) })).await,
            "definition" => client.request("textDocument/definition", json!({ "textDocument": doc, "position": position(words.next().unwrap()) })).await,
            "references" => {
                client
                    .request("textDocument/references", json!({ "textDocument": doc, "position": position(words.next().unwrap()), "context": { "includeDeclaration": true } }))
                    .await
            }
            "rename" => {
                let at = position(words.next().unwrap());
                client.request("textDocument/rename", json!({ "textDocument": doc, "position": at, "newName": words.next().unwrap() })).await
            }
            "completion" => client.request("textDocument/completion", json!({ "textDocument": doc, "position": position(words.next().unwrap()) })).await,
            "signature" => client.request("textDocument/signatureHelp", json!({ "textDocument": doc, "position": position(words.next().unwrap()) })).await,
            "symbols" => client.request("textDocument/documentSymbol", json!({ "textDocument": doc })).await,
            "semantic" => client.request("textDocument/semanticTokens/full", json!({ "textDocument": doc })).await,
            "format" => client.request("textDocument/formatting", json!({ "textDocument": doc, "options": { "tabSize": 2, "insertSpaces": true } })).await,
            other => panic!("unknown request `{other}` in {}", path.display()),
        };
        let _ = writeln!(
            transcript,
            "## {line}\n{}\n",
            render(method, &result, source)
        );
    }
    client.request("shutdown", Value::Null).await;
    transcript
}

#[test]
fn fixtures() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    insta::glob!("inputs/lsp/*.flow", |path| {
        let transcript = runtime.block_on(run_fixture(path));
        insta::assert_snapshot!(transcript);
    });
}

/// Edits arrive faster than the debounce: only the last version is analysed and its
/// diagnostics published, with that version's number.
#[test]
fn a_burst_of_edits_publishes_the_last_version() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let uri = "file:///fixtures/burst.flow";
        let mut client = Client::start().await;
        client.request("initialize", json!({ "capabilities": {} })).await;
        client
            .notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": "workflow w {\n}\n" } }))
            .await;
        let first = client.diagnostics(uri).await;
        assert_eq!(first, json!([]));
        for version in 2..=6 {
            let text = if version == 6 { "workflow w {\n  let x = \n}\n" } else { "workflow w {\n  let x = 1\n}\n" };
            client
                .notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }))
                .await;
        }
        loop {
            let message = client.receive().await;
            if message["method"] == "textDocument/publishDiagnostics" {
                assert_eq!(message["params"]["version"], 6, "an earlier version was published: {message}");
                assert!(!message["params"]["diagnostics"].as_array().unwrap().is_empty());
                break;
            }
        }
    });
}

/// Editing an imported file re-checks the open files that import it, against its
/// unsaved text.
#[test]
fn editing_an_imported_file_rechecks_its_importers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let common = "file:///fixtures/multi/common.flow";
        let main = "file:///fixtures/multi/main.flow";
        let mut client = Client::start().await;
        client.request("initialize", json!({ "capabilities": {} })).await;
        let open = |uri: &str, text: &str| json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": text } });
        client.notify("textDocument/didOpen", open(common, "type Thing = { a: int }\n")).await;
        client.diagnostics(common).await;
        let main_text = "import \"./common.flow\" as common\n\nworkflow w(t: common.Thing) -> int {\n  return t.a\n}\n";
        client.notify("textDocument/didOpen", open(main, main_text)).await;
        let before = client.diagnostics(main).await;
        assert!(before.as_array().unwrap().iter().all(|d| d["severity"] != 1), "{before}");
        client
            .notify("textDocument/didChange", json!({ "textDocument": { "uri": common, "version": 2 }, "contentChanges": [{ "text": "type Other = { a: int }\n" }] }))
            .await;
        let after = client.diagnostics(main).await;
        let rendered = render_diagnostics(&after);
        assert!(after.as_array().unwrap().iter().any(|d| d["severity"] == 1), "{rendered}");
        assert!(rendered.contains("Thing"), "{rendered}");
    });
}

/// References and rename of a name other files import reach every `.flow` file under the
/// workspace folder, open or not.
#[test]
fn references_and_rename_cover_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "lib.flow",
        "type Customer = { name: string }\n\nworkflow greet(c: Customer) -> string {\n  return \"hi ${c.name}\"\n}\n",
    );
    let user = |name: &str| {
        format!(
            "import \"./lib.flow\" as lib\n\nworkflow {name}(c: lib.Customer) -> string {{\n  step g = run lib.greet(c: c)\n  return g\n}}\n"
        )
    };
    write("a.flow", &user("a"));
    write("b.flow", &user("b"));
    std::fs::create_dir(dir.path().join("target")).unwrap();
    write("target/ignored.flow", &user("ignored"));
    let root = format!("file://{}", dir.path().display());
    let a = format!("{root}/a.flow");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (references, rename) = runtime.block_on(async {
        let mut client = Client::start().await;
        client
            .request(
                "initialize",
                json!({ "capabilities": {}, "workspaceFolders": [{ "uri": root, "name": "w" }] }),
            )
            .await;
        client.notify("initialized", json!({})).await;
        client
            .notify("textDocument/didOpen", json!({ "textDocument": { "uri": a, "languageId": "flow", "version": 1, "text": user("a") } }))
            .await;
        client.diagnostics(&a).await;
        // `greet` in `run lib.greet(...)`, line 4.
        let position = json!({ "line": 3, "character": 21 });
        let references = client
            .request("textDocument/references", json!({ "textDocument": { "uri": a }, "position": position, "context": { "includeDeclaration": true } }))
            .await;
        let rename = client
            .request("textDocument/rename", json!({ "textDocument": { "uri": a }, "position": position, "newName": "welcome" }))
            .await;
        (references, rename)
    });
    let file_of = |uri: &str| uri.rsplit('/').next().unwrap_or("").to_owned();
    let mut found: Vec<(String, u64)> = references
        .as_array()
        .unwrap_or_else(|| panic!("no references: {references}"))
        .iter()
        .map(|l| {
            (
                file_of(l["uri"].as_str().unwrap()),
                l["range"]["start"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("a.flow".into(), 3),
            ("b.flow".into(), 3),
            ("lib.flow".into(), 2)
        ],
        "{references}"
    );
    let mut edited: Vec<String> = rename["changes"]
        .as_object()
        .unwrap_or_else(|| panic!("no edits: {rename}"))
        .iter()
        .map(|(uri, edits)| {
            assert!(
                edits
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["newText"] == "welcome"),
                "{rename}"
            );
            file_of(uri)
        })
        .collect();
    edited.sort();
    assert_eq!(edited, vec!["a.flow", "b.flow", "lib.flow"], "{rename}");
}
