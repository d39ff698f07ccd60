//! Log output of the `synod` command: to stderr, filtered by `RUST_LOG`
//! (`tracing_subscriber::EnvFilter` syntax, default `info`), as text (with
//! colours only on a terminal) or as one JSON object per line; a node's
//! lines all carry its id (`node=3` first in text, a `"node":3` field in
//! JSON), also those of tasks that run outside any span naming it.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process's logger; `node` is the id of the node this
/// process runs, if any.
pub fn init(format: LogFormat, node: Option<u32>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colours for a terminal only: a log file or a pipe gets plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder
                .with_ansi(ansi)
                .event_format(WithNode {
                    node,
                    format,
                    inner: Format::default().with_ansi(ansi),
                })
                .init();
        }
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(WithNode {
                node,
                format,
                inner: Format::default().json(),
            })
            .init(),
    }
}

/// `inner`'s lines with the node's id: `node=<id> ` first in text, a
/// `"node"` field first in JSON.
struct WithNode<F> {
    node: Option<u32>,
    format: LogFormat,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(node) = self.node else {
            return self.inner.format_event(ctx, writer, event);
        };
        match self.format {
            LogFormat::Text => {
                write!(writer, "node={node} ")?;
                self.inner.format_event(ctx, writer, event)
            }
            LogFormat::Json => {
                let mut line = String::new();
                self.inner
                    .format_event(ctx, Writer::new(&mut line), event)?;
                match line.strip_prefix('{') {
                    Some(rest) => write!(writer, "{{\"node\":{node},{rest}"),
                    None => writer.write_str(&line),
                }
            }
        }
    }
}
