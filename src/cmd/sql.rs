//! `codestats sql`: ad-hoc SQL, or a query of the library, run as the
//! read-only analyst and printed or written through Polars.
//!
//! The store is opened (and migrated) as usual; the query itself goes through
//! a second handle on the same server and database as the analyst user
//! (the local server's credentials file, or `CODESTATS_ANALYST_USER` /
//! `CODESTATS_ANALYST_PASSWORD` with a configured URL), whose server-side
//! profile makes it read-only and limits result rows and execution time.

mod frame;

use crate::{config::Config, store::Store};
use anyhow::{Context, anyhow, bail};
use clap::{ArgGroup, ValueEnum};
use polars::prelude::{
    CsvWriter, DataFrame, JsonFormat, JsonWriter, ParquetWriter, PolarsError, SerWriter,
};
use sql::{
    Db,
    queries::{self, LibraryQuery},
};
use std::{
    fs::File,
    io::{BufWriter, ErrorKind, IsTerminal, Write},
    path::{Path, PathBuf},
};

#[derive(Debug, clap::Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["sql", "file", "query", "list"])
))]
pub struct SqlArgs {
    /// One SQL statement, run read-only as the analyst user.
    pub sql: Option<String>,
    /// Read the statement from FILE.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Run the library query NAME (see --list).
    #[arg(long, value_name = "NAME")]
    pub query: Option<String>,
    /// A parameter of the library query; repeat for several.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = key_value)]
    pub params: Vec<(String, String)>,
    /// List the library's queries and their parameters.
    #[arg(long)]
    pub list: bool,
    /// How to write the result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the result to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table (Polars' display: long results show their first and
    /// last rows; POLARS_FMT_MAX_ROWS / POLARS_FMT_MAX_COLS=-1 show all).
    Table,
    Csv,
    /// An array of row objects.
    Json,
    Parquet,
}

fn key_value(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{arg:?} is not KEY=VALUE"))
}

/// What to run.
enum Source {
    Text(String),
    Library(LibraryQuery, Vec<(String, String)>),
}

pub async fn run(config: &Config, args: SqlArgs) -> anyhow::Result<()> {
    if args.list {
        return list();
    }
    if args.format == Format::Parquet && args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("parquet is binary: give --output FILE or redirect stdout");
    }
    let source = source(&args)?;
    super::with_store(config, async |store: &Store| {
        let analyst = store.analyst();
        let db = Db::analyst(store.db.url(), store.db.database(), analyst)?;
        let answer = match &source {
            Source::Text(sql) => queries::run_text(&db, sql).await,
            Source::Library(query, params) => queries::run_library(&db, query, params).await,
        }
        .map_err(|e| {
            // The server's own words (`Code: 164, … readonly mode`), once.
            let reason = queries::server_message(&e).map_or_else(|| e.to_string(), str::to_owned);
            anyhow!(
                "query failed (as clickhouse user {}): {reason}",
                analyst.user
            )
        })?;
        let mut frame = frame::from_json_compact(&answer)?;
        write(&mut frame, args.format, args.output.as_deref())
    })
    .await
}

fn source(args: &SqlArgs) -> anyhow::Result<Source> {
    if !args.params.is_empty() && args.query.is_none() {
        bail!("--param applies to a library query (--query NAME) only");
    }
    Ok(if let Some(sql) = &args.sql {
        Source::Text(sql.clone())
    } else if let Some(path) = &args.file {
        Source::Text(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
    } else if let Some(name) = &args.query {
        let query = queries::find(name)?;
        // Checked before connecting: a bad value fails fast.
        query.values(&args.params)?;
        Source::Library(query, args.params.clone())
    } else {
        bail!("nothing to run: give SQL, --file, --query or --list")
    })
}

fn list() -> anyhow::Result<()> {
    quiet_broken_pipe(print_list())
}

fn print_list() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let library = queries::library().map_err(std::io::Error::other)?;
    for query in library {
        writeln!(out, "{}\n    {}", query.name, query.description)?;
        for p in &query.params {
            let default = match p.default.as_deref() {
                Some("") => " = ''".to_owned(),
                Some(d) => format!(" = {d}"),
                None => " (required)".to_owned(),
            };
            writeln!(
                out,
                "    --param {}=<{}>{default}  {}",
                p.name,
                p.ty.name(),
                p.doc
            )?;
        }
    }
    Ok(())
}

fn write(frame: &mut DataFrame, format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let written = match format {
        Format::Table => writeln!(out, "{frame}").map_err(PolarsError::from),
        Format::Csv => CsvWriter::new(&mut out).include_header(true).finish(frame),
        Format::Json => JsonWriter::new(&mut out)
            .with_json_format(JsonFormat::Json)
            .finish(frame),
        Format::Parquet => ParquetWriter::new(&mut out).finish(frame).map(drop),
    };
    match written {
        Err(PolarsError::IO { error, .. }) if error.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write the result"),
        Ok(()) => quiet_broken_pipe(out.flush()),
    }
}

/// A reader that stopped reading (`codestats sql … | head`) is no error.
fn quiet_broken_pipe(result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the result"),
    }
}
