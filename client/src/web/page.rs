//! A page's two forms, the HTML a person reads and its JSON twin (asked
//! for with `Accept: application/json` or `?format=json`), the parameters
//! of its URL, and the `query` questions pages are answered with.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use serde_json::Value as Json;

use super::html;
use crate::cli::{Cli, Command};
use crate::query::Query;
use crate::store::Store;
use crate::ClientError;

/// The parameters of a page's URL: its filters and times.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// The parameter `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", |v| v.trim())
    }

    /// A number parameter, `default` when absent or not a number.
    pub fn number(&self, name: &str, default: i64) -> i64 {
        self.get(name).parse().unwrap_or(default)
    }
}

/// What a page shows.
pub struct Page {
    /// Its navigation entry.
    pub active: &'static str,
    pub title: String,
    /// What the answer cannot say (a host that matches nothing, a moment
    /// inside a gap of the record).
    pub notes: Vec<String>,
    pub html: String,
    /// The twin: what the page shows, as data.
    pub json: Json,
}

/// Whether the client asked for the JSON twin.
pub fn wants_json(headers: &HeaderMap, params: &Params) -> bool {
    match params.get("format") {
        "json" => return true,
        "html" => return false,
        _ => {}
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            let first = accept.split(',').next().unwrap_or("").trim();
            first.starts_with("application/json")
        })
}

/// The page, or the error, in the form the client asked for.
pub fn reply(page: Result<Page, ClientError>, json: bool) -> Response {
    match page {
        Ok(page) if json => {
            let mut body = page.json;
            if !page.notes.is_empty() {
                body["notes"] = page.notes.into();
            }
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&body).unwrap_or_default(),
            )
                .into_response()
        }
        Ok(page) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::layout(page.active, &page.title, &page.notes, &page.html),
        )
            .into_response(),
        Err(e) => {
            let status = match e {
                ClientError::Usage(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::warn!(error = %e, "a page failed");
            }
            let text = e.to_string();
            if json {
                (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({ "error": text }).to_string(),
                )
                    .into_response()
            } else {
                let body = format!("<p class=\"error\">{}</p>", html::esc(&text));
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    html::layout("", "Cannot show this page", &[], &body),
                )
                    .into_response()
            }
        }
    }
}

/// Answers a `routewatch query` question, given as the words after
/// `query` (`hosts`, `history 10.0.0.0/8 --since -1h`, ...), in JSON:
/// its lines, and what it said on stderr.
pub async fn ask(
    store: &mut Store,
    words: &[String],
    now: i64,
) -> Result<(Vec<Json>, Vec<String>), ClientError> {
    let query = question(words)?;
    let mut out = Vec::new();
    let mut notes = Vec::new();
    crate::query::answer(store, &query, now, false, &mut out, &mut notes).await?;
    let lines = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<Vec<Json>, _>>()
        .map_err(|e| ClientError::Record(format!("query printed a line that is not JSON: {e}")))?;
    Ok((lines, note_lines(&notes)))
}

/// The question `words` ask, parsed as the command line parses it (so a
/// page's filters are `show`'s, spelled and checked alike).
pub fn question(words: &[String]) -> Result<Query, ClientError> {
    let mut argv = vec![
        "routewatch".to_owned(),
        "query".into(),
        "-o".into(),
        "json".into(),
    ];
    argv.extend(words.iter().cloned());
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        let text = e.render().to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        ClientError::Usage(first.to_owned())
    })?;
    match cli.command {
        Command::Query(q) => Ok(q),
        _ => unreachable!("the words follow `query`"),
    }
}

/// stderr's lines without the program's name.
pub fn note_lines(notes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(notes)
        .lines()
        .map(|l| l.trim_start_matches("routewatch: ").to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `--flag value` for each non-empty parameter of `names` (the page's
/// parameter and the command line's flag share the name).
pub fn flags(params: &Params, names: &[&str]) -> Vec<String> {
    let mut words = Vec::new();
    for name in names {
        let value = params.get(name);
        if !value.is_empty() {
            words.push(format!("--{name}"));
            words.push(value.to_owned());
        }
    }
    words
}

/// An object of `ip -j -d` fields in one line of words (`dst 10.0.0.0/8
/// gateway 10.1.0.1 dev eth0 ...`), without the fields that `skip` names.
pub fn describe(object: &Json, skip: &[&str]) -> String {
    let Some(map) = object.as_object() else {
        return object.to_string();
    };
    let mut words = Vec::new();
    for (k, v) in map {
        if skip.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        let value = match v {
            Json::String(s) => s.clone(),
            Json::Array(a) if a.is_empty() => continue,
            other => other.to_string(),
        };
        words.push(format!("{k} {value}"));
    }
    words.join(" ")
}

/// The fields of the lines of `query` that describe the record rather than
/// the object.
pub const RECORD_FIELDS: [&str; 16] = [
    "host",
    "netns",
    "valid_from",
    "valid_to",
    "opened_by",
    "closed_by",
    "opened_stream_id",
    "opened_seq",
    "closed_stream_id",
    "closed_seq",
    "key",
    "object",
    "at",
    "only",
    "action",
    "family",
];
