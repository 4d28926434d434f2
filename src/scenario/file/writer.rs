//! Writes a validated scenario back as a scenario file (shrinking writes its result, and
//! every candidate is parsed again from this text).

use std::fmt::Write as _;

use crate::scenario::{Action, Scenario, Target, show};

/// Writes `scenario` as a scenario file.
pub fn to_toml(s: &Scenario) -> String {
    let q = |t: &str| format!("{t:?}");
    let list = |names: Vec<&str>| {
        format!("[{}]", names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", "))
    };
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", q(&s.name));
    if !s.description.is_empty() {
        let _ = writeln!(out, "description = {}", q(&s.description));
    }
    let _ = writeln!(out, "duration = {}", q(&show(s.duration)));
    let _ = writeln!(out, "leader = {}", q(&s.nodes[s.leader]));
    let _ = writeln!(out, "seed = {}", s.seed);
    let t = &s.timing;
    let _ = writeln!(out, "\n[timing]");
    for (key, value) in [
        ("tick", t.raft.tick),
        ("election_timeout", t.raft.election_timeout),
        ("heartbeat", t.raft.heartbeat),
        ("drift_margin", t.raft.drift_margin),
        ("request_timeout", t.request_timeout),
        ("failover_after", t.failover_after),
        ("monitor_interval", t.monitor_interval),
    ] {
        let _ = writeln!(out, "{key} = {}", q(&show(value)));
    }
    let _ = writeln!(out, "lease = {}", t.lease);
    let _ = writeln!(out, "monitor_site = {}", q(&s.sites[t.monitor_site].name));
    let _ = writeln!(out, "default_latency = {}", q(&t.default_latency.to_string()));
    for site in &s.sites {
        let _ = writeln!(out, "\n[[site]]\nname = {}", q(&site.name));
        let _ = writeln!(
            out,
            "nodes = {}",
            list(site.nodes.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
        let _ = writeln!(out, "latency = {}", q(&site.latency.to_string()));
    }
    for link in &s.links {
        let _ = writeln!(
            out,
            "\n[[link]]\nbetween = {}",
            list(vec![&s.sites[link.a].name, &s.sites[link.b].name])
        );
        let _ = writeln!(out, "latency = {}\nloss = {}", q(&link.latency.to_string()), link.loss);
    }
    for g in &s.clients {
        let _ = writeln!(
            out,
            "\n[[clients]]\nname = {}\nsite = {}\ncount = {}\nrate = {:?}\nkeys = {}",
            q(&g.name),
            q(&s.sites[g.site].name),
            g.count,
            g.rate,
            g.keys
        );
        let _ = writeln!(
            out,
            "mix = {{ put = {:?}, get = {:?}, cas = {:?}, delete = {:?} }}",
            g.mix.put, g.mix.get, g.mix.cas, g.mix.delete
        );
        let _ = writeln!(
            out,
            "talk_to = {}",
            list(g.talk_to.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
        let _ = writeln!(
            out,
            "consistency = {}\ntimeout = {}",
            q(g.consistency.name()),
            q(&show(g.timeout))
        );
    }
    for g in &s.locks {
        let _ = writeln!(
            out,
            "\n[[locks]]\nname = {}\nsite = {}\ncount = {}\nttl = {}\npause_chance = {:?}",
            q(&g.name),
            q(&s.sites[g.site].name),
            g.count,
            q(&format!("{}s", g.ttl)),
            g.pause_chance
        );
        let _ = writeln!(
            out,
            "talk_to = {}",
            list(g.talk_to.iter().map(|n| s.nodes[*n].as_str()).collect())
        );
    }
    let expect = [
        ("raft", &s.expect.raft),
        ("\"naive-failover\"", &s.expect.naive_failover),
        ("\"naive-failover-fenced\"", &s.expect.naive_failover_fenced),
    ];
    if expect.iter().any(|(_, names)| !names.is_empty()) {
        let _ = writeln!(out, "\n[expect]");
        for (key, names) in expect.iter().filter(|(_, names)| !names.is_empty()) {
            let _ = writeln!(out, "{key} = {}", list(names.iter().map(String::as_str).collect()));
        }
    }
    for e in &s.events {
        let _ = writeln!(out, "\n[[event]]\nat = {}", q(&show(e.at)));
        let node = |n: &usize| q(&s.nodes[*n]);
        let _ = match &e.action {
            Action::Partition { sides, one_way } => {
                let sides: Vec<String> = sides
                    .iter()
                    .map(|side| {
                        list(
                            side.iter()
                                .map(|t| match t {
                                    Target::Site(i) => s.sites[*i].name.as_str(),
                                    Target::Node(n) => s.nodes[*n].as_str(),
                                })
                                .collect(),
                        )
                    })
                    .collect();
                let one_way = if *one_way { "\none_way = true" } else { "" };
                writeln!(out, "partition = [{}]{one_way}", sides.join(", "))
            }
            Action::Heal => writeln!(out, "heal = true"),
            Action::IsolateLeader => writeln!(out, "isolate_leader = true"),
            Action::Crash(n) => writeln!(out, "crash = {}", node(n)),
            Action::Restart(n) => writeln!(out, "restart = {}", node(n)),
            Action::Pause(n) => writeln!(out, "pause = {}", node(n)),
            Action::Resume(n) => writeln!(out, "resume = {}", node(n)),
            Action::Drift(n, rate) => writeln!(out, "node = {}\ndrift = {rate:?}", node(n)),
            Action::Jump(n, d) => {
                writeln!(out, "node = {}\njump = {}", node(n), q(&format!("+{}", show(*d))))
            }
            Action::Loss(a, b, rate) => writeln!(
                out,
                "between = {}\nloss = {rate:?}",
                list(vec![&s.sites[*a].name, &s.sites[*b].name])
            ),
            Action::SetLatency(a, b, l) => writeln!(
                out,
                "between = {}\nlatency = {}",
                list(vec![&s.sites[*a].name, &s.sites[*b].name]),
                q(&l.to_string())
            ),
        };
    }
    out
}
