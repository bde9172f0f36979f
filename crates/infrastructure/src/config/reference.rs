//! The settings reference of docs/configuration.md, rendered from a binary's clap
//! definitions so that the document says what `--help` says, and the checks that
//! keep both honest: the committed tables match, every setting has a variable and
//! a help text, and every range a help text states is the one its parser enforces.
//!
//! A help text states the accepted range of a bounded setting in a marker at the
//! end of its first paragraph, `[range: 1ms to 10m]` or `[range: at least 1]`
//! (both ends inclusive); `--help` shows it as written and the reference puts it
//! in the `values` column.

use std::any::TypeId;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use clap::{Arg, Command};

/// The environment variable under which the tests that call [`check_section`]
/// rewrite the document instead of failing.
pub const UPDATE_VARIABLE: &str = "OFFNDAT_UPDATE_DOCS";

/// How to regenerate every section of docs/configuration.md.
pub const REGENERATE: &str = "OFFNDAT_UPDATE_DOCS=1 cargo test --workspace --lib config_docs";

/// Checks the settings of `command` and that the section `name` of
/// docs/configuration.md is their reference; with [`UPDATE_VARIABLE`] set,
/// rewrites the section. For one test per binary, which panics with the result.
pub fn check_docs(command: &Command, name: &str) -> Result<(), String> {
    let problems = problems(command);
    if !problems.is_empty() {
        return Err(format!("settings of {}:\n{}", command.get_name(), problems.join("\n")));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    check_section(&path, name, &render(command), REGENERATE, std::env::var_os(UPDATE_VARIABLE).is_some())
}

/// One Markdown table per help heading of `command` (in the order they first
/// appear), each setting with its variable, flag, default, accepted values and
/// full help text.
pub fn render(command: &Command) -> String {
    let mut headings: Vec<(&str, Vec<&Arg>)> = Vec::new();
    for arg in settings(command) {
        let heading = arg.get_help_heading().unwrap_or("Options");
        match headings.iter_mut().find(|(name, _)| *name == heading) {
            Some((_, args)) => args.push(arg),
            None => headings.push((heading, vec![arg])),
        }
    }
    let mut out = String::new();
    for (heading, args) in headings {
        let _ =
            write!(out, "\n### {heading}\n\n| variable | flag | default | values | meaning |\n|---|---|---|---|---|\n");
        for arg in args {
            let help = Help::of(arg);
            let _ = writeln!(
                out,
                "| `{}` | `--{}` | {} | {} | {} |",
                arg.get_env().map(|e| e.to_string_lossy()).unwrap_or_default(),
                arg.get_long().unwrap_or_default(),
                default(arg),
                cell(&values(arg, &help)),
                cell(&help.text),
            );
        }
    }
    out
}

/// What is wrong with the settings of `command`, one line per problem: a setting
/// without an environment variable or a help text, a duration or a rate without
/// a stated range, or a stated range its parser does not enforce.
pub fn problems(command: &Command) -> Vec<String> {
    let mut problems = Vec::new();
    for arg in settings(command) {
        let name = format!("--{}", arg.get_long().unwrap_or_else(|| arg.get_id().as_str()));
        if arg.get_env().is_none() {
            problems.push(format!("{name}: no environment variable"));
        }
        if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
            problems.push(format!("{name}: no help text"));
        }
        let kind = Kind::of(arg);
        match (Help::of(arg).range, kind) {
            (None, Some(Kind::Duration | Kind::Float)) => {
                problems.push(format!("{name}: a duration or rate states no `[range: …]` in its help"));
            }
            (None, _) => {}
            (Some(_), None) => problems.push(format!("{name}: a `[range: …]` on a value that is not a number")),
            (Some(range), Some(kind)) => problems.extend(kind.check(arg, &range).map(|p| format!("{name}: {p}"))),
        }
    }
    problems
}

/// Compares the generated section `name` of the Markdown file at `path` (between
/// `<!-- generated:NAME:start -->` and `<!-- generated:NAME:end -->`) with
/// `rendered`; with `update`, rewrites the section instead. The error says how to
/// regenerate: `regenerate` is the command to run.
pub fn check_section(path: &Path, name: &str, rendered: &str, regenerate: &str, update: bool) -> Result<(), String> {
    let document = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (start, end) = (format!("<!-- generated:{name}:start -->\n"), format!("<!-- generated:{name}:end -->"));
    let (Some(from), Some(to)) = (document.find(&start).map(|i| i + start.len()), document.find(&end)) else {
        return Err(format!("{}: the markers `{}` and `{end}` are missing", path.display(), start.trim_end()));
    };
    let body = format!(
        "<!-- Generated from the definitions of the settings; edit their doc comments, then run `{regenerate}`. -->\n{rendered}"
    );
    let committed = document.get(from..to).unwrap_or_default();
    if committed == body {
        return Ok(());
    }
    if update {
        let updated = format!("{}{body}{}", &document[..from], &document[to..]);
        return std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()));
    }
    let (expected, found): (Vec<&str>, Vec<&str>) = (body.lines().collect(), committed.lines().collect());
    let show = |lines: &[&str], i: usize| lines.get(i).unwrap_or(&"(nothing: the section ends before)").to_string();
    let difference = match (0..expected.len().max(found.len())).find(|&i| expected.get(i) != found.get(i)) {
        Some(i) => {
            format!("line {} of the section: expected\n  {}\nfound\n  {}\n", i + 1, show(&expected, i), show(&found, i))
        }
        None => "in line ends only".to_owned(),
    };
    Err(format!(
        "{}: the generated `{name}` section does not match the settings' definitions ({difference}). Change the \
         doc comments of the settings rather than the table, then regenerate it: `{regenerate}`",
        path.display(),
    ))
}

/// The arguments that are settings: every one but `--help` and `--version`.
fn settings(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
}

/// A help text split into the prose and the stated range.
struct Help {
    /// The long help (or the help), paragraphs joined, without the range marker.
    text: String,
    /// What the `[range: …]` marker says, if there is one.
    range: Option<String>,
}

impl Help {
    const MARKER: &str = "[range: ";

    fn of(arg: &Arg) -> Self {
        let text = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
        let text = text.split("\n\n").map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
        let mut text = text.join(" ");
        let mut range = None;
        if let Some(at) = text.find(Self::MARKER)
            && let Some(len) = text[at..].find(']')
        {
            range = Some(text[at + Self::MARKER.len()..at + len].to_owned());
            text = format!("{}{}", text[..at].trim_end(), &text[at + len + 1..]);
        }
        if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
            text.push('.');
        }
        Self { text, range }
    }
}

/// The default value(s), or `none`.
fn default(arg: &Arg) -> String {
    let defaults: Vec<_> = arg.get_default_values().iter().map(|d| d.to_string_lossy()).collect();
    if defaults.is_empty() { "none".to_owned() } else { format!("`{}`", defaults.join(",")) }
}

/// The accepted values: the stated range, the possible values with their help,
/// or that a list is comma-separated.
fn values(arg: &Arg, help: &Help) -> String {
    if let Some(range) = &help.range {
        return range.clone();
    }
    let possible: Vec<_> = arg.get_possible_values().into_iter().filter(|value| !value.is_hide_set()).collect();
    if possible.iter().any(|value| value.get_help().is_some()) {
        let described = possible.iter().map(|value| {
            let help = value.get_help().map(ToString::to_string).unwrap_or_default();
            format!("`{}`: {}", value.get_name(), help.trim_end_matches('.'))
        });
        return described.collect::<Vec<_>>().join("; ");
    }
    if !possible.is_empty() {
        return possible.iter().map(|value| format!("`{}`", value.get_name())).collect::<Vec<_>>().join(", ");
    }
    match arg.get_value_delimiter() {
        Some(delimiter) => format!("list separated by `{delimiter}`"),
        None => String::new(),
    }
}

/// Text made safe for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The value types a range can be stated for.
#[derive(Clone, Copy)]
enum Kind {
    Duration,
    Float,
    Integer,
}

impl Kind {
    fn of(arg: &Arg) -> Option<Self> {
        let id = arg.get_value_parser().type_id();
        if id == TypeId::of::<Duration>() {
            Some(Self::Duration)
        } else if id == TypeId::of::<f64>() {
            Some(Self::Float)
        } else if [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i64>(),
        ]
        .into_iter()
        .any(|t| id == t)
        {
            Some(Self::Integer)
        } else {
            None
        }
    }

    /// Checks a stated range (`A to B` or `at least A`) against the argument's
    /// parser: both ends are accepted, and the values just outside are refused.
    fn check(self, arg: &Arg, range: &str) -> Option<String> {
        let (low, high) = match range.split_once(" to ") {
            Some((low, high)) => (low.trim(), Some(high.trim())),
            None => match range.strip_prefix("at least ") {
                Some(low) => (low.trim(), None),
                None => return Some(format!("`[range: {range}]` is neither `A to B` nor `at least A`")),
            },
        };
        let mut probes = Vec::new();
        for (end, outward) in [(Some(low), -1), (high, 1)] {
            let Some(end) = end else { continue };
            let Some(beyond) = self.beyond(end, outward) else {
                return Some(format!("`{end}` in `[range: {range}]` is not a value of this setting"));
            };
            probes.push((end.to_owned(), true));
            probes.extend(beyond.map(|value| (value, false)));
        }
        let probe = Command::new("probe")
            .no_binary_name(true)
            .arg(arg.clone().env(None).global(false).required(false).default_value(None));
        let long = arg.get_long().unwrap_or_default();
        probes
            .into_iter()
            .find(|(value, accepted)| {
                probe.clone().try_get_matches_from([format!("--{long}={value}")]).is_ok() != *accepted
            })
            .map(|(value, accepted)| {
                let verb = if accepted { "refuses" } else { "accepts" };
                format!("states `[range: {range}]` but its parser {verb} `{value}`")
            })
    }

    /// The nearest value beyond the stated `end` of a range (below it when
    /// `outward` is -1, above it when 1), if the type has one; `None` when `end`
    /// is not a value of this kind.
    fn beyond(self, end: &str, outward: i8) -> Option<Option<String>> {
        match self {
            Self::Duration => {
                let at = humantime::parse_duration(end).ok()?;
                let beyond = if outward < 0 {
                    at.checked_sub(Duration::from_nanos(1))
                } else {
                    at.checked_add(Duration::from_nanos(1))
                };
                Some(beyond.map(|d| humantime::format_duration(d).to_string()))
            }
            Self::Float => {
                let at: f64 = end.parse().ok()?;
                Some(Some((at + f64::from(outward) * at.abs().max(1.0) * 1e-9).to_string()))
            }
            Self::Integer => {
                let at: i128 = end.parse().ok()?;
                Some(Some((at + i128::from(outward)).to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command with one of each kind of setting the reference knows.
    fn command() -> Command {
        Command::new("demo")
            .next_help_heading("Demo")
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .env("DEMO_TIMEOUT")
                    .default_value("10s")
                    .value_parser(crate::config::duration_in(Duration::from_millis(1), Duration::from_secs(600)))
                    .help("How long | at most [range: 1ms to 10m]")
                    .long_help("How long | at most [range: 1ms to 10m].\n\nA second paragraph"),
            )
            .arg(
                Arg::new("count")
                    .long("count")
                    .env("DEMO_COUNT")
                    .value_parser(clap::value_parser!(u32).range(1..=10))
                    .help("How many [range: 1 to 10]"),
            )
            .arg(Arg::new("names").long("names").env("DEMO_NAMES").value_delimiter(',').help("Names"))
    }

    #[test]
    fn renders_one_table_per_heading_with_ranges_and_defaults() {
        assert_eq!(
            render(&command()),
            "\n### Demo\n\n| variable | flag | default | values | meaning |\n|---|---|---|---|---|\n\
             | `DEMO_TIMEOUT` | `--timeout` | `10s` | 1ms to 10m | How long \\| at most. A second paragraph. |\n\
             | `DEMO_COUNT` | `--count` | none | 1 to 10 | How many. |\n\
             | `DEMO_NAMES` | `--names` | none | list separated by `,` | Names. |\n"
        );
        assert_eq!(problems(&command()), Vec::<String>::new());
    }

    #[test]
    fn a_range_the_parser_does_not_enforce_is_a_problem() {
        let wrong = |help: &'static str| command().mut_arg("count", |arg| arg.help(help));
        assert_eq!(
            problems(&wrong("How many [range: 0 to 10]")),
            ["--count: states `[range: 0 to 10]` but its parser refuses `0`"]
        );
        assert_eq!(
            problems(&wrong("How many [range: 1 to 11]")),
            ["--count: states `[range: 1 to 11]` but its parser refuses `11`"]
        );
        assert_eq!(
            problems(&wrong("How many [range: at least 1]")),
            Vec::<String>::new(),
            "an open range checks its low end only"
        );
        assert_eq!(
            problems(&wrong("How many [range: 2 to 10]")),
            ["--count: states `[range: 2 to 10]` but its parser accepts `1`"]
        );
        let rate = |help: &'static str| {
            Command::new("demo").arg(
                Arg::new("rate")
                    .long("rate")
                    .env("DEMO_RATE")
                    .value_parser(crate::config::parse_positive_rate)
                    .help(help),
            )
        };
        assert_eq!(problems(&rate("Per second [range: 0.001 to 1000000]")), Vec::<String>::new());
        assert_eq!(
            problems(&rate("Per second [range: 0.01 to 1000000]")),
            ["--rate: states `[range: 0.01 to 1000000]` but its parser accepts `0.009999999`"]
        );
        let unbounded = command().mut_arg("timeout", |arg| arg.help("How long").long_help(None));
        assert_eq!(problems(&unbounded), ["--timeout: a duration or rate states no `[range: …]` in its help"]);
    }

    #[test]
    fn a_stale_section_fails_with_the_command_to_regenerate_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("doc.md");
        std::fs::write(&path, "intro\n<!-- generated:x:start -->\nold\n<!-- generated:x:end -->\noutro\n")
            .expect("write");
        let error = check_section(&path, "x", "new\n", "make docs", false).expect_err("stale");
        assert!(error.contains("make docs") && error.contains("old"), "{error}");
        assert!(check_section(&path, "y", "new\n", "make docs", false).expect_err("no markers").contains("missing"));

        check_section(&path, "x", "new\n", "make docs", true).expect("rewritten");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "intro\n<!-- generated:x:start -->\n<!-- Generated from the definitions of the settings; edit their doc \
             comments, then run `make docs`. -->\nnew\n<!-- generated:x:end -->\noutro\n"
        );
        check_section(&path, "x", "new\n", "make docs", false).expect("now current");
        let error = check_section(&path, "x", "new\nmore\n", "make docs", false).expect_err("a line more");
        assert!(error.contains("line 3 of the section: expected\n  more\nfound\n  (nothing"), "{error}");
        let error = check_section(&path, "x", "new", "make docs", false).expect_err("no line end");
        assert!(error.contains("in line ends only"), "{error}");
    }
}
