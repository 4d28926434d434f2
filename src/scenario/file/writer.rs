//! Writes a validated scenario back as a scenario file (shrinking writes its result, and
//! every candidate is parsed again from this text).

use std::fmt::Write as _;

use crate::scenario::{Action, RaftOptions, Scenario, SimWorld, Target, show};
use crate::sim::SimTransport;

/// Writes `scenario` as a scenario file.
pub fn to_toml(s: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", q(&s.name));
    if !s.description.is_empty() {
        let _ = writeln!(out, "description = {}", q(&s.description));
    }
    let _ = writeln!(out, "duration = {}", q(&show(s.duration)));
    match &s.sim {
        Some(world) => {
            let _ = writeln!(out, "seed = {}", s.seed);
            sim_world(&mut out, world);
        }
        None => {
            let _ = writeln!(out, "leader = {}", q(&s.nodes[s.leader]));
            let _ = writeln!(out, "seed = {}", s.seed);
            sites_world(&mut out, s);
        }
    }
    expect_and_events(&mut out, s);
    out
}

/// `name = "a"` quoted as TOML (and Rust) quote strings.
fn q(t: &str) -> String {
    format!("{t:?}")
}

/// `["a", "b"]`.
fn list(names: Vec<&str>) -> String {
    format!("[{}]", names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", "))
}

/// `[sim]`: the world `raftbed sim` drew.
fn sim_world(out: &mut String, w: &SimWorld) {
    let p = &w.params;
    let _ = writeln!(out, "\n[sim]");
    let _ = writeln!(
        out,
        "nodes = {}\nclients = {}\nlock_clients = {}\nwatchers = {}\nhistory_kept = {}",
        w.nodes, w.clients, w.lock_clients, w.watchers, w.history_kept
    );
    let _ =
        writeln!(out, "workload = {}\nappend_clients = {}", q(w.workload.name()), w.append_clients);
    if w.spares > 0 {
        let _ = writeln!(out, "spares = {}", w.spares);
    }
    let _ = writeln!(
        out,
        "tick = {}\nelection_ticks = {}\nheartbeat_ticks = {}",
        q(&show(p.timing.tick)),
        p.timing.election_ticks(),
        p.timing.heartbeat_ticks()
    );
    let _ = writeln!(
        out,
        "latency_max = {}\nthink_max = {}\nkeys = {}\nattempts = {}",
        q(&show(p.latency_max)),
        q(&show(p.think_max)),
        p.keys,
        p.attempts
    );
    let _ = writeln!(
        out,
        "pre_vote = {}\ncheck_quorum = {}\nlease_reads = {}\nmax_entries_per_message = {}\nsnapshot_every = {}",
        p.pre_vote, p.check_quorum, p.lease_reads, p.max_entries_per_message, p.compact_every
    );
    let transport = match w.transport {
        SimTransport::Messages => "messages",
        SimTransport::Wire => "wire",
    };
    let _ = writeln!(
        out,
        "transport = {}\npeer_transport = {}",
        q(transport),
        q(w.peer_transport.name())
    );
}

/// Timing, Raft's options, sites, links, client and lock groups.
fn sites_world(out: &mut String, s: &Scenario) {
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
    let r = &s.raft;
    if *r != RaftOptions::default() {
        let _ = writeln!(
            out,
            "\n[raft]\npre_vote = {}\ncheck_quorum = {}\nmax_entries_per_message = {}\nsnapshot_every = {}",
            r.pre_vote, r.check_quorum, r.max_entries_per_message, r.snapshot_every
        );
        if r.spares > 0 {
            let spares = s.nodes[s.voters()..].iter().map(String::as_str).collect();
            let _ = writeln!(out, "spares = {}", list(spares));
        }
    }
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
}

/// `[expect]` and the timeline.
fn expect_and_events(out: &mut String, s: &Scenario) {
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
            Action::Cut(links) => writeln!(out, "cut = {}", directed(s, links)),
            Action::Uncut(links) => writeln!(out, "uncut = {}", directed(s, links)),
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
                list(vec![s.target_name(a), s.target_name(b)])
            ),
            Action::SetLatency(a, b, l) => writeln!(
                out,
                "between = {}\nlatency = {}",
                list(vec![s.target_name(a), s.target_name(b)]),
                q(&l.to_string())
            ),
            Action::Note(text) => writeln!(out, "note = {}", q(text)),
            Action::Member(change) => member(out, s, change),
            Action::Replace(a, b) => writeln!(out, "replace = {}\nwith = {}", node(a), node(b)),
        };
    }
}

/// `add` (with `learner = true`), `remove`; a joint change or an update has no event of its
/// own.
fn member(
    out: &mut String,
    s: &Scenario,
    change: &crate::raft::MembershipChange,
) -> std::fmt::Result {
    use crate::raft::MembershipChange as C;
    let name = |id: &crate::raft::NodeId| q(&s.nodes[id.0 as usize - 1]);
    match change {
        C::AddLearner(id) => writeln!(out, "add = {}\nlearner = true", name(id)),
        C::AddVoter(id) => writeln!(out, "add = {}", name(id)),
        C::Remove(id) => writeln!(out, "remove = {}", name(id)),
        C::Joint { .. } | C::Update(_) => writeln!(out, "note = {}", q(&format!("asked {change}"))),
    }
}

/// `[["n1", "n2"], ...]`: directed links by node name.
fn directed(s: &Scenario, links: &[(usize, usize)]) -> String {
    let pairs: Vec<String> =
        links.iter().map(|(a, b)| format!("[{:?}, {:?}]", s.nodes[*a], s.nodes[*b])).collect();
    format!("[{}]", pairs.join(", "))
}
