//! How results reach people and scripts: tables, JSON and CSV on stdout; progress on stderr, as
//! an indicatif bar on a terminal and as plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use time::OffsetDateTime;

use super::{CliResult, Failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

/// Rows with a header, printed as an aligned table or as CSV.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Two spaces between columns, the last one unpadded; widths in characters.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut out = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                if i == last {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.headers).expect("writing to memory");
        for row in &self.rows {
            writer.write_record(row).expect("writing to memory");
        }
        String::from_utf8(writer.into_inner().expect("flushing to memory")).expect("CSV of UTF-8 strings")
    }
}

/// Prints a list in the chosen format: `items` as a JSON array, or `table` as a table or CSV.
pub fn print_list<T: Serialize>(format: OutputFormat, items: &[T], table: Table) {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(items).expect("wire types serialise")),
        OutputFormat::Table => print!("{}", table.render()),
        OutputFormat::Csv => print!("{}", table.to_csv()),
    }
}

/// Prints one JSON document, for `--output json`.
pub fn print_json<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("wire types serialise"));
}

/// Single results (a status, a summary) have no CSV form.
pub fn refuse_csv(format: OutputFormat) -> CliResult {
    match format {
        OutputFormat::Csv => Err(Failure::usage("--output csv is for lists; use table or json")),
        _ => Ok(()),
    }
}

/// "3 min ago", "in 7 min", "just now": whole units, rounded the way people read a clock.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (at - now).whole_seconds();
    let span = humanise(seconds.unsigned_abs());
    match seconds {
        -5..=5 => "just now".to_owned(),
        s if s < 0 => format!("{span} ago"),
        _ => format!("in {span}"),
    }
}

/// A span in its largest sensible unit: `45 s`, `7 min`, `3 h 5 min`, `2 d`.
pub fn humanise(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds.div_ceil(60).min(59)),
        3600..=86_399 => match (seconds / 3600, (seconds % 3600) / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        _ => format!("{} d", seconds / 86_400),
    }
}

/// A UTC timestamp to the second, for people.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).expect("a UTC date formats")
}

/// Progress of a long operation on stderr: a bar or spinner on a terminal, else a plain line
/// each time the message changes (so logs stay readable and short).
pub enum Progress {
    Terminal(ProgressBar),
    Plain { last: String },
}

impl Progress {
    fn on_terminal() -> bool {
        std::io::stderr().is_terminal()
    }

    /// A spinner with a message and the time elapsed.
    pub fn spinner(message: &str) -> Progress {
        if !Self::on_terminal() {
            let mut plain = Progress::Plain { last: String::new() };
            plain.set_message(message);
            return plain;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner:.cyan} {msg} ({elapsed})").expect("valid template"));
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Terminal(bar)
    }

    /// A bar of `total` items with a message beside it.
    pub fn bar(total: u64, message: &str) -> Progress {
        if !Self::on_terminal() {
            let mut plain = Progress::Plain { last: String::new() };
            plain.set_message(message);
            return plain;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("[{bar:32.green/white}] {pos}/{len} {msg} ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress::Terminal(bar)
    }

    pub fn set_message(&mut self, message: &str) {
        match self {
            Progress::Terminal(bar) => bar.set_message(message.to_owned()),
            Progress::Plain { last } => {
                if last != message {
                    eprintln!("{message}");
                    *last = message.to_owned();
                }
            }
        }
    }

    pub fn set_position(&mut self, position: u64) {
        if let Progress::Terminal(bar) = self {
            bar.set_position(position);
        }
    }

    /// A line printed above the bar (or as a plain line), kept in the scrollback.
    pub fn println(&self, line: &str) {
        match self {
            Progress::Terminal(bar) => bar.println(line),
            Progress::Plain { .. } => eprintln!("{line}"),
        }
    }

    /// Leaves the final state on screen.
    pub fn finish(self, message: &str) {
        match self {
            Progress::Terminal(bar) => bar.finish_with_message(message.to_owned()),
            Progress::Plain { last } => {
                if last != message {
                    eprintln!("{message}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(humanise(45), "45 s");
        assert_eq!(humanise(61), "2 min");
        assert_eq!(humanise(420), "7 min");
        assert_eq!(humanise(3600 + 300), "1 h 5 min");
        assert_eq!(humanise(3 * 86_400), "3 d");
        let now = OffsetDateTime::now_utc();
        assert_eq!(relative(now - time::Duration::minutes(3), now), "3 min ago");
        assert_eq!(relative(now + time::Duration::minutes(7), now), "in 7 min");
        assert_eq!(relative(now, now), "just now");
    }

    #[test]
    fn tables_align_and_csv_quotes() {
        let mut table = Table::new(&["SERIAL", "MODEL"]);
        table.row(vec!["PF1".into(), "Laptop, 7".into()]);
        table.row(vec!["PF1GHXN3".into(), "X".into()]);
        assert_eq!(table.render(), "SERIAL    MODEL\nPF1       Laptop, 7\nPF1GHXN3  X\n");
        assert_eq!(table.to_csv(), "SERIAL,MODEL\nPF1,\"Laptop, 7\"\nPF1GHXN3,X\n");
    }
}
