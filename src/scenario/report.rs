//! Replay reports: `report.html` (self-contained: the systems side by side, then per system a
//! timeline of each node's role with the fault windows as bands, client latency over time per
//! group drawn with plotters as SVG, the detector's findings, the checker's counterexample and
//! the replay command), plus each system's `history.jsonl`, `history.edn` and `trace.txt`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use jepsen_lite::{CheckResult, Outcome};
use plotters::prelude::*;

use super::run::ReplayReport;

/// Writes the report for `reports` (one per system) into `dir`. With one system its files are
/// `history.jsonl`, `history.edn`, `trace.txt` and, for Raft, `resolved.jsonl` (the fates of
/// its writes, for `raftbed check --resolved`); with several, each system's are in a
/// subdirectory named after it.
///
/// # Errors
/// If the directory or a file cannot be written.
pub fn write_report(
    dir: &Path,
    reports: &[ReplayReport],
    path: &str,
    command: &str,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for report in reports {
        let sub =
            if reports.len() == 1 { dir.to_path_buf() } else { dir.join(report.label(reports)) };
        std::fs::create_dir_all(&sub)?;
        std::fs::write(
            sub.join("history.jsonl"),
            jepsen_lite::formats::write_jsonl(&report.history),
        )?;
        std::fs::write(sub.join("history.edn"), jepsen_lite::formats::write_edn(&report.history))?;
        std::fs::write(sub.join("trace.txt"), report.trace.join("\n") + "\n")?;
        if let Some((resolved, _)) = &report.resolved {
            std::fs::write(sub.join("resolved.jsonl"), resolved.to_jsonl())?;
        }
        if let Some(log) = &report.watch_log {
            std::fs::write(sub.join("watches.jsonl"), log.to_jsonl())?;
        }
    }
    std::fs::write(dir.join("report.html"), html(reports, path, command))
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(reports: &[ReplayReport], path: &str, command: &str) -> String {
    let run = &reports[0].run;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>raftbed replay: {name}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}.bad{{color:#c92a2a;font-weight:bold}}\
         .good{{color:#2b8a3e}}.undecided{{color:#e67700}}code,pre{{background:#f4f4f4;padding:2px 4px}}section{{margin-top:32px}}\
         li{{margin:2px 0}}</style></head><body>\
         <h1>{name}</h1><p>{desc}</p><p>Produced by <code>{command}</code></p>",
        name = esc(&run.name),
        desc = esc(&run.description),
        command = esc(command)
    );
    out += "<table id=\"summary\"><tr><th>system</th><th>linearizable</th><th>split brain</th>\
            <th>acked writes lost</th><th>stale reads</th><th>stale tokens</th><th>overlapping leadership</th>\
            <th>fenced rejections</th><th>max leaders at once</th><th>writes unavailable</th>\
            <th>verdict</th><th>trace hash</th></tr>";
    for r in reports {
        let f = &r.findings;
        let class = |bad: bool| if bad { "bad" } else { "good" };
        let _ = write!(
            out,
            "<tr><td><a href=\"#{sys}\">{sys}</a></td><td class=\"{lc}\">{lin}</td><td class=\"{sc}\">{split}</td>\
             <td>{lost}</td><td>{stale}</td><td>{tokens}</td><td>{overlap}</td><td>{fenced}</td><td>{max}</td><td>{unavail:.0} s</td>\
             <td class=\"{vc}\">{verdict}</td><td><code>{hash}</code></td></tr>",
            sys = r.label(reports),
            lc = match r.linearizable() {
                Some(yes) => class(!yes),
                None => "undecided",
            },
            lin = match r.linearizable() {
                Some(true) => "yes",
                Some(false) => "no",
                None => "undecided",
            },
            vc = match r.verdict().exit_code() {
                crate::verdict::EXIT_HELD => "good",
                crate::verdict::EXIT_VIOLATED => "bad",
                _ => "undecided",
            },
            verdict = r.verdict().overall().word(),
            sc = class(f.split_brain()),
            split = if f.split_brain() { "YES" } else { "no" },
            lost = f.lost_writes.len(),
            stale = f.stale_reads.len(),
            tokens = f.stale_tokens.len(),
            overlap = f.overlapping_leadership.len(),
            fenced = f.fenced_rejections,
            max = f.max_leaders_at_once,
            unavail = f.unavailable_s,
            hash = r.trace_hash,
        );
    }
    out += "</table>";
    for r in reports {
        section(&mut out, r, reports, path);
    }
    out += "</body></html>\n";
    out
}

fn section(out: &mut String, r: &ReplayReport, reports: &[ReplayReport], path: &str) {
    let _ = write!(
        out,
        "<section id=\"{sys}\" class=\"system\"><h2>{sys}</h2><p>Replay: <code>{replay}</code></p>\
         <h3>Roles and faults</h3>{timeline}<h3>Client latency</h3>{plot}",
        sys = r.label(reports),
        replay = esc(&r.replay_command(path)),
        timeline = timeline_svg(r),
        plot = latency_svg(r).unwrap_or_else(|e| format!("<p>(plot failed: {})</p>", esc(&e))),
    );
    let f = &r.findings;
    let _ = write!(out, "<h3>Findings</h3><ul class=\"findings\">");
    let groups = [
        ("overlapping leadership", &f.overlapping_leadership),
        ("acknowledged write lost", &f.lost_writes),
        ("stale read", &f.stale_reads),
        ("stale token accepted", &f.stale_tokens),
    ];
    let mut any = false;
    for (kind, list) in groups {
        for finding in list.iter().take(200) {
            any = true;
            let _ = write!(out, "<li><b>{kind}</b>: {}</li>", esc(&finding.to_string()));
        }
        if list.len() > 200 {
            let _ = write!(
                out,
                "<li>... {} more {kind} findings (see history.jsonl)</li>",
                list.len() - 200
            );
        }
    }
    for violation in &f.violations {
        any = true;
        let _ = write!(out, "<li class=\"bad\"><b>invariant violated</b>: {}</li>", esc(violation));
    }
    if !any {
        out.push_str("<li class=\"good\">none: no overlapping leadership, no acknowledged write lost, no stale read</li>");
    }
    out.push_str("</ul><h3>Linearizability</h3>");
    match &r.linearizability {
        CheckResult::Linearizable => {
            out.push_str("<p class=\"good\">The history is linearizable.</p>")
        }
        CheckResult::NotLinearizable(c) => {
            let _ = write!(
                out,
                "<p class=\"bad\">Not linearizable.</p><pre class=\"counterexample\">{}</pre>",
                esc(&c.to_string())
            );
        }
        CheckResult::Unknown(why) => {
            let _ = write!(
                out,
                "<p class=\"undecided\">Undecided: the checker gave up ({}). Nothing was found \
                 wrong; raise the checker's budget to decide.</p>",
                esc(why)
            );
        }
    }
    if let Some(watch) = &r.watch {
        watches(out, watch);
    }
    out.push_str("</section>");
}

/// The watch check's verdict: what was checked, and each broken guarantee.
fn watches(out: &mut String, watch: &jepsen_lite::watch::WatchReport) {
    let class = if watch.violations.is_empty() { "good" } else { "bad" };
    let _ = write!(
        out,
        "<h3>Watches</h3><p class=\"{class}\">{}: {}. Recheck with \
         <code>raftbed check --format watches watches.jsonl</code>.</p>",
        if watch.violations.is_empty() { "Every guarantee held" } else { "Broken" },
        esc(&watch.summary())
    );
    if !watch.violations.is_empty() {
        out.push_str("<ul class=\"watch-violations\">");
        for violation in &watch.violations {
            let _ = write!(out, "<li class=\"bad\">{}</li>", esc(&violation.to_string()));
        }
        out.push_str("</ul>");
    }
}

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 60.0;
const LANE: f64 = 24.0;

fn role_color(role: &str) -> &'static str {
    match role {
        "leader" | "primary" => "#2b8a3e",
        "candidate" => "#f59f00",
        "down" => "#212529",
        "paused" => "#7048e8",
        _ => "#ced4da",
    }
}

/// Each node's role over time as SVG lanes, fault windows as bands across them.
fn timeline_svg(r: &ReplayReport) -> String {
    let end =
        r.roles.iter().map(|s| s.to).max().unwrap_or(Duration::from_secs(1)).as_secs_f64().max(1.0);
    let x = |d: Duration| LEFT + d.as_secs_f64() / end * (WIDTH - LEFT - 10.0);
    let lanes = r.run.nodes.len();
    let bands = r.faults.len();
    let top = 18.0 * bands as f64 + 6.0;
    let height = top + LANE * lanes as f64 + 30.0;
    let mut svg = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-size=\"11\">"
    );
    for (i, (from, to, label)) in r.faults.iter().enumerate() {
        let (a, b) = (x(*from), x(*to).max(x(*from) + 2.0));
        let _ = write!(
            svg,
            "<rect class=\"fault\" x=\"{a:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#fa5252\" fill-opacity=\"0.15\"><title>{t}</title></rect>\
             <text x=\"{a:.1}\" y=\"{ty:.1}\" fill=\"#c92a2a\">{t} ({f:.1}s-{e:.1}s)</text>",
            y = 18.0 * i as f64,
            w = b - a,
            h = height - 18.0 * i as f64 - 24.0,
            t = esc(label),
            ty = 18.0 * i as f64 + 12.0,
            f = from.as_secs_f64(),
            e = to.as_secs_f64(),
        );
    }
    for (n, name) in r.run.nodes.iter().enumerate() {
        let y = top + LANE * n as f64;
        let _ = write!(svg, "<text x=\"4\" y=\"{:.1}\">{}</text>", y + 15.0, esc(name));
        for span in r.roles.iter().filter(|s| s.node == n && s.to > s.from) {
            let (a, b) = (x(span.from), x(span.to));
            let _ = write!(
                svg,
                "<rect class=\"role\" x=\"{a:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\"><title>{name} {role} {f:.3}s-{t:.3}s</title></rect>",
                w = (b - a).max(0.5),
                h = LANE - 6.0,
                c = role_color(&span.role),
                role = span.role,
                f = span.from.as_secs_f64(),
                t = span.to.as_secs_f64(),
            );
        }
    }
    let axis = top + LANE * lanes as f64 + 14.0;
    let step = if end > 120.0 {
        20.0
    } else if end > 40.0 {
        10.0
    } else {
        5.0
    };
    let mut t = 0.0;
    while t <= end {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{axis:.1}\">{t:.0}s</text>",
            x(Duration::from_secs_f64(t))
        );
        t += step;
    }
    let legend = [
        ("leader / primary", "leader"),
        ("follower / replica", "follower"),
        ("candidate", "candidate"),
        ("down", "down"),
        ("paused", "paused"),
    ];
    let mut lx = LEFT;
    for (label, role) in legend {
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"{y:.1}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{label}</text>",
            y = axis + 4.0,
            c = role_color(role),
            tx = lx + 14.0,
            ty = axis + 13.0,
        );
        lx += 130.0;
    }
    let height = axis + 20.0;
    svg = svg.replacen(
        &format!("height=\"{:.0}\"", top + LANE * lanes as f64 + 30.0),
        &format!("height=\"{height:.0}\""),
        1,
    );
    svg + "</svg>"
}

/// Latency of every completed op over time, one series per client group, fault windows shaded.
fn latency_svg(r: &ReplayReport) -> Result<String, String> {
    let ops = r.history.ops().map_err(|e| e.to_string())?;
    let time = |e: usize| r.history.events[e].time.unwrap_or(0).max(0) as f64 / 1e9;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let group_of = |process: &jepsen_lite::Process| -> String {
        match process {
            jepsen_lite::Process::Client(p) => {
                let client = (*p % r.processes.max(1)) as usize;
                r.groups.get(client).cloned().unwrap_or_default()
            }
            _ => String::new(),
        }
    };
    let mut all = Vec::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let Some(done) = op.complete else { continue };
        let point = (time(op.invoke), (time(done) - time(op.invoke)) * 1000.0);
        all.push(point.1);
        let group = group_of(&op.process);
        match series.iter_mut().find(|(g, _)| *g == group) {
            Some((_, points)) => points.push(point),
            None => series.push((group, vec![point])),
        }
    }
    all.sort_by(f64::total_cmp);
    let ymax = all
        .get(all.len().saturating_sub(1).min(all.len() * 995 / 1000))
        .copied()
        .unwrap_or(10.0)
        .max(10.0)
        * 1.2;
    let end = r.roles.iter().map(|s| s.to).max().unwrap_or_default().as_secs_f64().max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("latency of ok ops (ms)")
            .draw()
            .map_err(|e| e.to_string())?;
        let band = RGBColor(250, 82, 82).mix(0.15);
        chart
            .draw_series(r.faults.iter().map(|(from, to, _)| {
                Rectangle::new([(from.as_secs_f64(), 0.0), (to.as_secs_f64(), ymax)], band.filled())
            }))
            .map_err(|e| e.to_string())?;
        for (i, (group, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(
                    points.iter().map(|(t, l)| Circle::new((*t, l.min(ymax)), 2, color.filled())),
                )
                .map_err(|e| e.to_string())?
                .label(group.clone())
                .legend(move |(x, y)| Circle::new((x, y), 3, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg.replacen("<svg ", "<svg class=\"latency\" ", 1))
}
