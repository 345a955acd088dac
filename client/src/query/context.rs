//! Opening the store (never creating one), and what every question works
//! with: the store, the present, the output and stderr.

use std::io::{self, Write};

use super::args::{Query, Question};
use super::{diff, gaps, history, hosts, routes, verify};
use crate::printer::{now_unix_nano, Format};
use crate::store::{Store, StoreUrl};
use crate::{when, ClientError};

/// Opens the store (never creating one) and answers the question on
/// stdout, with what the answer cannot say on stderr.
pub async fn run(query: Query) -> Result<(), ClientError> {
    let url = StoreUrl::parse(&query.store)?;
    if let StoreUrl::Sqlite(path) = &url {
        // Opening would create the file, and an empty store answers every
        // question with silence: say what is wrong instead.
        if !path.exists() {
            return Err(ClientError::NoStore(url.to_string()));
        }
    }
    let mut store = Store::open(&url).await?;
    let mut out = io::BufWriter::new(io::stdout());
    let mut notes = io::stderr();
    let terminal = io::IsTerminal::is_terminal(&io::stdout());
    answer(
        &mut store,
        &query,
        now_unix_nano(),
        terminal,
        &mut out,
        &mut notes,
    )
    .await?;
    out.flush()?;
    Ok(())
}

/// Answers `query` from `store`, taking `now` as the present; `terminal`
/// when a person reads `out` (columns with a header where a question has
/// them).
pub async fn answer(
    store: &mut Store,
    query: &Query,
    now: i64,
    terminal: bool,
    out: &mut (dyn Write + Send),
    notes: &mut (dyn Write + Send),
) -> Result<(), ClientError> {
    let mut cx = Context {
        store,
        now,
        format: query.format,
        terminal,
        out,
        notes,
    };
    match &query.command {
        Question::Routes(args) => routes::run(&mut cx, args).await,
        Question::History(args) => history::run(&mut cx, args).await,
        Question::Diff(args) => diff::run(&mut cx, args).await,
        Question::Gaps(args) => gaps::run(&mut cx, args).await,
        Question::Hosts => hosts::run(&mut cx).await,
        Question::Verify(args) => verify::run(&mut cx, args).await,
    }
}

/// What every question works with.
pub struct Context<'a> {
    pub store: &'a mut Store,
    /// The present, for `now` and times ago.
    pub now: i64,
    pub format: Format,
    /// A person reads the answer (stdout is a terminal).
    pub terminal: bool,
    /// The answer.
    pub out: &'a mut (dyn Write + Send),
    /// What the answer cannot say (stderr).
    pub notes: &'a mut (dyn Write + Send),
}

/// The two kinds of output every question has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Text,
    Json,
}

impl Context<'_> {
    /// The moment `text` names (`flag` says where it came from).
    pub fn time(&self, flag: &str, text: &str) -> Result<i64, ClientError> {
        when::parse_time(text, self.now).map_err(|e| ClientError::Usage(format!("{flag}: {e}")))
    }

    /// The output of `question`, which prints text or JSON (and columns as
    /// its text, when `columns`).
    pub fn lines(&self, question: &str, columns: bool) -> Result<Lines, ClientError> {
        match self.format {
            Format::Text => Ok(Lines::Text),
            Format::Table if columns => Ok(Lines::Text),
            Format::Json => Ok(Lines::Json),
            other => {
                let name = clap::ValueEnum::to_possible_value(&other)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default();
                Err(ClientError::Usage(format!(
                    "-o {name} does not apply to query {question}: use text or json"
                )))
            }
        }
    }

    /// One JSON object on a line of its own.
    pub fn json_line(&mut self, line: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut *self.out, line)?;
        self.out.write_all(b"\n")
    }
}
