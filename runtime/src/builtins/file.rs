//! The built-in `file` integration: read (text, JSON, CSV), write, append, list.
//! Paths are relative to the working directory of the `flow` process.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::StepError;

pub async fn call(action: &str, args: &Map<String, Json>) -> Result<Json, StepError> {
    let path = arg_str(args, "path")
        .or_else(|| arg_str(args, "dir"))
        .unwrap_or_default()
        .to_owned();
    if path.is_empty() {
        return Err(StepError::validation(format!(
            "file.{action} needs a `path`"
        )));
    }
    match action {
        "read" => Ok(Json::String(read_text(&path).await?)),
        "read_json" => {
            let text = read_text(&path).await?;
            serde_json::from_str(&text).map_err(|e| {
                StepError::validation(format!("{path} is not valid JSON: {e}")).with_details(
                    serde_json::json!({ "path": path, "line": e.line(), "column": e.column() }),
                )
            })
        }
        "read_csv" => {
            let text = read_text(&path).await?;
            parse_csv(&path, &text)
        }
        "write" => {
            let text = arg_str(args, "text").unwrap_or_default().to_owned();
            write(&path, text.into_bytes(), false).await
        }
        "write_json" => {
            let value = args.get("value").cloned().unwrap_or(Json::Null);
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|e| StepError::runtime(format!("cannot encode JSON for {path}: {e}")))?;
            text.push('\n');
            write(&path, text.into_bytes(), false).await
        }
        "append" => {
            let text = arg_str(args, "text").unwrap_or_default().to_owned();
            write(&path, text.into_bytes(), true).await
        }
        "list" => {
            let mut dir = tokio::fs::read_dir(&path)
                .await
                .map_err(|e| io_error(&path, &e))?;
            let mut names = Vec::new();
            while let Some(entry) = dir.next_entry().await.map_err(|e| io_error(&path, &e))? {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(Json::Array(names.into_iter().map(Json::String).collect()))
        }
        other => Err(StepError::runtime(format!("file has no action `{other}`"))),
    }
}

fn arg_str<'a>(args: &'a Map<String, Json>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Json::as_str)
}

async fn read_text(path: &str) -> Result<String, StepError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| io_error(path, &e))
}

async fn write(path: &str, bytes: Vec<u8>, append: bool) -> Result<Json, StepError> {
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(path, &e))?;
    }
    let len = bytes.len();
    if append {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| io_error(path, &e))?;
        f.write_all(&bytes).await.map_err(|e| io_error(path, &e))?;
        f.flush().await.map_err(|e| io_error(path, &e))?;
    } else {
        // Write beside and rename, so a crash never leaves half a file behind.
        let tmp = format!("{path}.flow-tmp");
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| io_error(path, &e))?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| io_error(path, &e))?;
    }
    Ok(serde_json::json!({ "path": path, "bytes": len }))
}

fn io_error(path: &str, e: &std::io::Error) -> StepError {
    StepError::runtime(format!("{path}: {e}")).with_details(serde_json::json!({ "path": path }))
}

/// CSV with a header row: each record becomes a map from column name to text.
pub fn parse_csv(path: &str, text: &str) -> Result<Json, StepError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| StepError::validation(format!("{path}: bad CSV header: {e}")))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| StepError::validation(format!("{path}: bad CSV: {e}")))?;
        let mut row = Map::new();
        for (name, value) in headers.iter().zip(record.iter()) {
            row.insert(name.to_owned(), Json::String(value.to_owned()));
        }
        rows.push(Json::Object(row));
    }
    Ok(Json::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_maps() {
        let rows = parse_csv("x.csv", "name,amount\nAda,10\n\"Grace, H\",20\n").unwrap();
        assert_eq!(
            rows,
            serde_json::json!([{ "name": "Ada", "amount": "10" }, { "name": "Grace, H", "amount": "20" }])
        );
    }

    #[test]
    fn ragged_csv_is_a_validation_error() {
        let err = parse_csv("x.csv", "a,b\n1\n").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Validation);
        assert!(err.message.contains("x.csv"), "{}", err.message);
    }
}
