//! The pages' common HTML: the layout with its navigation, escaping, and
//! the small pieces every page uses.

use std::fmt::Write;

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one component of a URL's query.
pub fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A query string (`?a=1&b=2`) of the non-empty `pairs`.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_component(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The pages, as the navigation lists them.
const NAV: [(&str, &str); 5] = [
    ("fleet", "Fleet"),
    ("host", "Host"),
    ("prefix", "Prefix"),
    ("diff", "Diff"),
    ("live", "Live"),
];

/// A whole page: `active` is the navigation entry it is.
pub fn layout(active: &str, title: &str, notes: &[String], body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · routewatch</title><link rel=\"stylesheet\" href=\"/assets/app.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body data-page=\"{active}\">\
         <nav><span class=\"brand\">routewatch</span>",
        esc(title)
    );
    for (path, name) in NAV {
        let class = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"/{path}\"{class}>{name}</a>");
    }
    out.push_str("<a class=\"json\" id=\"json-twin\" href=\"\">JSON</a></nav><main>");
    let _ = write!(out, "<h1>{}</h1>", esc(title));
    for note in notes {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(note));
    }
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

/// A text input of a filter form.
pub fn input(name: &str, label: &str, value: &str, placeholder: &str) -> String {
    format!(
        "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\"></label>",
        esc(value),
        esc(placeholder)
    )
}

/// A table: `header` cells, then `rows` of cells already in HTML.
pub fn table(id: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}
