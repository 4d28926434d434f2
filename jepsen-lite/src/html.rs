//! A self-contained HTML timeline of a history: one lane per process, each operation a bar from
//! invocation to completion (open to the right when indeterminate), faults from named processes
//! as bands, and, for a non-linearizable history, the counterexample's window highlighted, with
//! the longest linearizable prefix drawn as linearization points on the bars and listed with
//! the model's state after each operation.
//! Large histories are cut to the ops around the window (or the first ones), so the page stays
//! small; the page says what it left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checker::{CheckResult, Counterexample, Report};
use crate::history::{History, Outcome, Process};

/// Page options.
#[derive(Clone, Debug)]
pub struct HtmlOptions {
    /// The page title.
    pub title: String,
    /// At most this many operations are drawn.
    pub max_ops: usize,
}

impl Default for HtmlOptions {
    fn default() -> HtmlOptions {
        HtmlOptions { title: "history".into(), max_ops: 2_000 }
    }
}

const LANE: f64 = 22.0;
const LEFT: f64 = 90.0;
const WIDTH: f64 = 1200.0;

/// Renders the page. `report` adds the verdict and highlights its counterexample.
pub fn render(history: &History, report: Option<&Report>, options: &HtmlOptions) -> String {
    let ops = history.ops().unwrap_or_default();
    let (window, failing) = match report.map(|r| &r.result) {
        Some(CheckResult::NotLinearizable(c)) => {
            (c.window.iter().map(|o| o.id).collect::<Vec<_>>(), c.failing_op.as_ref().map(|o| o.id))
        }
        _ => (Vec::new(), None),
    };
    // Which ops to draw: all, or max_ops around the window (or from the start).
    let centre = window.first().copied().unwrap_or(0);
    let first =
        centre.saturating_sub(options.max_ops / 2).min(ops.len().saturating_sub(options.max_ops));
    let shown = &ops[first..(first + options.max_ops).min(ops.len())];
    let (lo, hi) = match (shown.first(), shown.last()) {
        (Some(a), Some(b)) => (a.invoke, b.complete.unwrap_or(b.invoke).max(b.invoke) + 1),
        _ => (0, 1),
    };
    let end = history.events.len().max(hi);
    let hi =
        shown.iter().map(|o| o.complete.unwrap_or(end)).max().unwrap_or(hi).min(end).max(lo + 1);
    let xf = |at: f64| {
        LEFT + (at.clamp(lo as f64, hi as f64) - lo as f64) / (hi - lo) as f64
            * (WIDTH - LEFT - 10.0)
    };
    let x = |event: usize| xf(event as f64);
    let points = match report.map(|r| &r.result) {
        Some(CheckResult::NotLinearizable(c)) => linearization_points(c),
        _ => BTreeMap::new(),
    };
    let mut lanes: BTreeMap<Process, usize> = BTreeMap::new();
    for op in shown {
        let next = lanes.len();
        lanes.entry(op.process.clone()).or_insert(next);
    }
    let lane_of: BTreeMap<Process, usize> =
        lanes.keys().cloned().enumerate().map(|(i, p)| (p, i)).collect();
    let height = (lane_of.len() as f64 + 1.5) * LANE + 30.0;

    let mut svg = String::new();
    write!(svg, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" id="timeline">"#).unwrap();
    draw_nemesis(&mut svg, history, lo, hi, height, &x);
    for (process, lane) in &lane_of {
        let y = 20.0 + *lane as f64 * LANE;
        write!(
            svg,
            r#"<text x="4" y="{}" class="lane">process {}</text>"#,
            y + 14.0,
            esc(&process.to_string())
        )
        .unwrap();
        write!(
            svg,
            r##"<line x1="{LEFT}" y1="{}" x2="{WIDTH}" y2="{}" stroke="#eee"/>"##,
            y + LANE - 2.0,
            y + LANE - 2.0
        )
        .unwrap();
    }
    for op in shown {
        let y = 20.0 + lane_of[&op.process] as f64 * LANE + 3.0;
        let x0 = x(op.invoke);
        let x1 = x(op.complete.filter(|_| op.outcome == Outcome::Ok).unwrap_or(end)).max(x0 + 3.0);
        let class = match (op.outcome, failing == Some(op.id), window.contains(&op.id)) {
            (_, true, _) => "op failing",
            (_, _, true) => "op window",
            (Outcome::Ok, _, _) => "op ok",
            (Outcome::Fail, _, _) => "op fail",
            (Outcome::Indeterminate, _, _) => "op info",
        };
        let x1 = if op.outcome == Outcome::Fail {
            x(op.complete.unwrap_or(end)).max(x0 + 3.0)
        } else {
            x1
        };
        let result = match (&op.outcome, &op.output) {
            (Outcome::Ok, Some(v)) => format!(" -> {v}"),
            (Outcome::Fail, _) => " -> fail".into(),
            (Outcome::Indeterminate, _) => " -> ? (indeterminate)".into(),
            _ => String::new(),
        };
        let key = op.key.as_ref().map(|k| format!(" {k}")).unwrap_or_default();
        let label = format!("{}{key} {}", op.f, op.input);
        write!(
            svg,
            r#"<g class="{class}" data-op="{}"><title>op {} (process {}, line {}): {}{}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{}" rx="3"/>"#,
            op.id,
            op.id,
            esc(&op.process.to_string()),
            op.line,
            esc(&label),
            esc(&result),
            x1 - x0,
            LANE - 6.0
        )
        .unwrap();
        if let Some((order, at, state)) = points.get(&op.id) {
            write!(
                svg,
                r#"<circle class="lp" cx="{:.1}" cy="{:.1}" r="3.5"><title>linearized #{order}; state after: {}</title></circle>"#,
                xf(*at),
                y + (LANE - 6.0) / 2.0,
                esc(state)
            )
            .unwrap();
        }
        if x1 - x0 > 40.0 {
            let text: String = label.chars().take(((x1 - x0) / 6.5) as usize).collect();
            write!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x0 + 3.0, y + 12.0, esc(&text))
                .unwrap();
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");

    let mut page = String::new();
    write!(page, "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>", esc(&options.title)).unwrap();
    write!(page, "<h1>{}</h1>", esc(&options.title)).unwrap();
    if let Some(report) = report {
        let class = report.result.verdict();
        write!(
            page,
            "<p class=\"verdict {class}\" id=\"verdict\">{}</p>",
            esc(report.to_string().lines().next().unwrap_or(""))
        )
        .unwrap();
        if let CheckResult::NotLinearizable(c) = &report.result {
            write!(page, "<pre id=\"counterexample\">{}</pre>", esc(&c.to_string())).unwrap();
            prefix_table(&mut page, c);
        }
        if let CheckResult::Unknown(reason) = &report.result {
            write!(page, "<p>{}</p>", esc(reason)).unwrap();
        }
    }
    if shown.len() < ops.len() {
        write!(
            page,
            "<p class=\"note\">Showing operations {} to {} of {}.</p>",
            first,
            first + shown.len(),
            ops.len()
        )
        .unwrap();
    }
    page.push_str("<p class=\"legend\"><span class=\"k ok\"></span>ok <span class=\"k fail\"></span>failed (did not happen) <span class=\"k info\"></span>indeterminate <span class=\"k window\"></span>counterexample window <span class=\"k failing\"></span>cannot be explained <span class=\"k lp\"></span>linearization point <span class=\"k nemesis\"></span>fault</p>");
    page.push_str("<div class=\"scroll\">");
    page.push_str(&svg);
    page.push_str("</div></body></html>\n");
    page
}

/// Faults: an event of a named process whose `f` starts a fault (`start...`, `partition`,
/// `kill`, `pause`, `crash`, `isolate`, `clock`) opens a band that the next ending one
/// (`stop...`, `heal`, `resume`, `restart`) closes; anything else is a line.
fn draw_nemesis(
    svg: &mut String,
    history: &History,
    lo: usize,
    hi: usize,
    height: f64,
    x: &dyn Fn(usize) -> f64,
) {
    let closes = |f: &str| {
        f.starts_with("stop")
            || ["heal", "resume", "restart", "recover"].iter().any(|w| f.contains(w))
    };
    let opens = |f: &str| {
        f.starts_with("start")
            || ["partition", "kill", "pause", "crash", "isolate", "clock"]
                .iter()
                .any(|w| f.contains(w))
    };
    let band = |svg: &mut String, from: usize, to: usize, what: &str| {
        if to >= lo && from <= hi {
            let (x0, x1) = (x(from), x(to));
            write!(svg, r#"<g class="nemesis"><title>{}</title><rect x="{x0:.1}" y="0" width="{:.1}" height="{height}"/></g>"#, esc(what), (x1 - x0).max(2.0)).unwrap();
        }
    };
    let mut open: Option<(usize, String)> = None;
    for (index, event) in history.nemesis_events() {
        let label = format!("{} {}", event.f, event.value);
        if closes(&event.f) {
            let (from, what) = open.take().unwrap_or((index, label));
            band(svg, from, index, &what);
        } else if opens(&event.f) {
            open.get_or_insert((index, label));
        } else {
            band(svg, index, index, &label);
        }
    }
    if let Some((from, what)) = open {
        band(svg, from, history.events.len(), &what);
    }
}

/// Rows of the prefix table at most; the last ones, nearest the failure, are kept.
const PREFIX_ROWS: usize = 200;

/// Each op of the longest linearizable prefix: (its place in the order, a point in event
/// positions, the state after it). The order respects real time, so each op can be placed at
/// the latest of its invocation and the previous op's point, just after, and before its own
/// completion.
fn linearization_points(c: &Counterexample) -> BTreeMap<usize, (usize, f64, String)> {
    let mut points = BTreeMap::new();
    let mut previous = f64::MIN;
    for (order, (op, state)) in c.longest_prefix.iter().enumerate() {
        let mut at = (op.invoke as f64 + 0.5).max(previous + 0.002);
        if let (Outcome::Ok, Some(complete)) = (op.outcome, op.complete) {
            at = at.min(complete as f64 - 0.05);
        }
        previous = at;
        points.insert(op.id, (order + 1, at, state.clone()));
    }
    points
}

/// The longest linearizable prefix as a table: order, operation, the model's state after it.
fn prefix_table(page: &mut String, c: &Counterexample) {
    let n = c.longest_prefix.len();
    write!(page, "<h2>Longest linearizable prefix ({n} ops)</h2>").unwrap();
    if n > PREFIX_ROWS {
        write!(page, "<p class=\"note\">The last {PREFIX_ROWS} of {n}.</p>").unwrap();
    }
    page.push_str("<table id=\"prefix\"><tr><th>#</th><th>op</th><th>state after</th></tr>");
    for (i, (op, state)) in c.longest_prefix.iter().enumerate().skip(n.saturating_sub(PREFIX_ROWS))
    {
        write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&op.to_string()),
            esc(state)
        )
        .unwrap();
    }
    page.push_str("</table>");
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:20px;color:#222}\
h1{font-size:20px}.verdict{font-weight:bold;font-size:16px}\
.linearizable{color:#1a7f37}.not-linearizable{color:#c62828}.unknown{color:#b26a00}\
pre{background:#f6f8fa;padding:10px;overflow:auto;max-height:320px}\
.scroll{overflow:auto;border:1px solid #ddd}svg text{font:11px monospace}.lane{fill:#555}\
.op rect{stroke:#555;stroke-width:.5}.op.ok rect{fill:#a5d6a7}.op.fail rect{fill:#e0e0e0}\
.op.info rect{fill:#ffe0b2;stroke-dasharray:3 2}.op.window rect{fill:#ef9a9a;stroke:#c62828;stroke-width:1.5}\
.op.failing rect{fill:#e53935;stroke:#7f0000;stroke-width:2.5}.nemesis rect{fill:#90caf9;opacity:.35}\
.legend .k{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;border:1px solid #555}\
.k.ok{background:#a5d6a7}.k.fail{background:#e0e0e0}.k.info{background:#ffe0b2}\
.k.window{background:#ef9a9a}.k.failing{background:#e53935}.k.nemesis{background:#90caf9}.note{color:#666}\
circle.lp{fill:#1565c0;stroke:#fff;stroke-width:1}.k.lp{background:#1565c0;border-radius:50%;width:10px}\
#prefix{border-collapse:collapse;font:12px monospace}#prefix td,#prefix th{border:1px solid #ddd;padding:2px 6px;text-align:left}";
