//! Bar charts of visits over time, drawn as SVG on the server: humans and bots
//! stacked apart, one bar per bucket, each with a tooltip title. Pure geometry
//! from the series; the template writes the elements and CSS colours them.

use chrono::{DateTime, Utc};
use offndat_domain::stats::{Bucket, Granularity, VisitCounts};

/// The SVG's coordinate system; it scales to the page's width.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One chart, ready for the template.
pub struct Chart {
    /// The element id; also the prefix of the ids of its title and summary.
    pub id: &'static str,
    pub title: &'static str,
    /// The whole chart in words, for everyone and for screen readers.
    pub summary: String,
    pub counts: VisitCounts,
    pub view_box: String,
    pub bars: Vec<Bar>,
    pub labels: Vec<AxisLabel>,
    /// The value at the top grid line.
    pub max: i64,
    pub left: String,
    pub right: String,
    pub top: String,
    pub baseline: String,
    pub label_y: String,
}

/// One bucket's bar: the humans' part at the bottom, the bots' stacked on it.
pub struct Bar {
    pub title: String,
    pub x: String,
    pub width: String,
    pub human: Option<Span>,
    pub bot: Option<Span>,
}

/// A vertical extent of a bar.
pub struct Span {
    pub y: String,
    pub height: String,
}

/// A label under the x axis.
pub struct AxisLabel {
    pub x: String,
    pub text: String,
}

fn coordinate(value: f64) -> String {
    format!("{value:.1}")
}

/// The smallest 1, 2 or 5 × 10ⁿ at least `value` (and at least 1), so the top
/// grid line has a round number.
fn nice_max(value: i64) -> i64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= value {
                return step * factor;
            }
        }
        step *= 10;
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The chart of `buckets` (oldest first). Every `label_every`-th bucket gets an
/// axis label written by `label`.
pub fn chart(
    id: &'static str,
    title: &'static str,
    period: &str,
    buckets: &[Bucket],
    granularity: Granularity,
    label_every: usize,
) -> Chart {
    let mut counts = VisitCounts::default();
    for bucket in buckets {
        counts += bucket.visits;
    }
    let max = nice_max(buckets.iter().map(|b| b.visits.total()).max().unwrap_or(0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let baseline = HEIGHT - BOTTOM;
    let slot = plot_width / buckets.len().max(1) as f64;
    let bar_width = (slot * 0.8).max(1.0);
    let scale = plot_height / max as f64;

    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, bucket) in buckets.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_width) / 2.0;
        if i % label_every.max(1) == 0 {
            labels.push(AxisLabel { x: coordinate(x + bar_width / 2.0), text: axis_label(bucket.start, granularity) });
        }
        let VisitCounts { human, bot } = bucket.visits;
        if human + bot == 0 {
            continue;
        }
        let human_height = human as f64 * scale;
        let bot_height = bot as f64 * scale;
        let span =
            |top: f64, height: f64| (height > 0.0).then(|| Span { y: coordinate(top), height: coordinate(height) });
        bars.push(Bar {
            title: format!(
                "{}: {}, {}",
                bucket_name(bucket.start, granularity),
                plural(human, "person", "people"),
                plural(bot, "bot", "bots")
            ),
            x: coordinate(x),
            width: coordinate(bar_width),
            human: span(baseline - human_height, human_height),
            bot: span(baseline - human_height - bot_height, bot_height),
        });
    }
    let summary = format!(
        "{} in the last {period}: {} by people, {} by bots.",
        plural(counts.total(), "visit", "visits"),
        counts.human,
        counts.bot
    );
    Chart {
        id,
        title,
        summary,
        counts,
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        bars,
        labels,
        max,
        left: coordinate(LEFT),
        right: coordinate(WIDTH - RIGHT),
        top: coordinate(TOP),
        baseline: coordinate(baseline),
        label_y: coordinate(HEIGHT - 8.0),
    }
}

fn axis_label(start: DateTime<Utc>, granularity: Granularity) -> String {
    match granularity {
        Granularity::Hour => start.format("%H:00").to_string(),
        Granularity::Day => start.format("%-d %b").to_string(),
    }
}

fn bucket_name(start: DateTime<Utc>, granularity: Granularity) -> String {
    match granularity {
        Granularity::Hour => start.format("%-d %b %H:00 UTC").to_string(),
        Granularity::Day => start.format("%-d %b %Y").to_string(),
    }
}

/// Sums hourly buckets into days (UTC), oldest first.
pub fn days_of(hours: &[Bucket]) -> Vec<Bucket> {
    let mut days: Vec<Bucket> = Vec::new();
    for hour in hours {
        let day = Granularity::Day.floor(hour.start);
        match days.last_mut() {
            Some(last) if last.start == day => last.visits += hour.visits,
            _ => days.push(Bucket { start: day, visits: hour.visits }),
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn maxima_are_round() {
        assert_eq!([0, 1, 2, 3, 6, 11, 99, 101].map(nice_max), [1, 1, 2, 5, 10, 20, 100, 200]);
    }

    #[test]
    fn bars_stack_bots_on_humans_and_skip_empty_buckets() {
        let buckets = [
            Bucket { start: at("2026-11-25T10:00:00Z"), visits: VisitCounts { human: 0, bot: 0 } },
            Bucket { start: at("2026-11-25T11:00:00Z"), visits: VisitCounts { human: 3, bot: 2 } },
        ];
        let chart = chart("hours", "By hour", "48 hours", &buckets, Granularity::Hour, 1);
        assert_eq!(chart.max, 5);
        assert_eq!(chart.bars.len(), 1);
        let bar = &chart.bars[0];
        assert_eq!(bar.title, "25 Nov 11:00 UTC: 3 people, 2 bots");
        let human = bar.human.as_ref().expect("humans");
        let bot = bar.bot.as_ref().expect("bots");
        // The plot is 180 high: 3/5 of it for humans, 2/5 above for bots.
        assert_eq!((human.y.as_str(), human.height.as_str()), ("84.0", "108.0"));
        assert_eq!((bot.y.as_str(), bot.height.as_str()), ("12.0", "72.0"));
        assert_eq!(chart.summary, "5 visits in the last 48 hours: 3 by people, 2 by bots.");
        assert_eq!(chart.labels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["10:00", "11:00"]);
    }

    #[test]
    fn hours_sum_into_days() {
        let hours = [
            Bucket { start: at("2026-11-24T23:00:00Z"), visits: VisitCounts { human: 1, bot: 0 } },
            Bucket { start: at("2026-11-25T00:00:00Z"), visits: VisitCounts { human: 2, bot: 1 } },
            Bucket { start: at("2026-11-25T05:00:00Z"), visits: VisitCounts { human: 0, bot: 4 } },
        ];
        let days = days_of(&hours);
        assert_eq!(days.len(), 2);
        assert_eq!(days[1].visits, VisitCounts { human: 2, bot: 5 });
    }
}
