//! `[sim]`: a world `raftbed sim` drew, written by `--emit-scenario`. It stands for the
//! sites, links, clients, timing and Raft options of a scenario, which such a file must not
//! have: its replay builds the simulator's own world from these values, and its timeline is
//! the primitives the nemesis applied, by node name. Its values mean what they mean in the
//! simulator: `lease_reads` turns check-quorum on whatever `check_quorum` says (§6.4.1).

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use super::raw::{FileScenario, FileSim};
use super::{Ctx, ScenarioError};
use crate::scenario::SimWorld;
use crate::server::timing::Timing;
use crate::sim::{SimParams, SimTransport, Workload};
use crate::transport::PeerTransport;

/// The validated `[sim]` table.
pub(super) fn parse(
    cx: &Ctx<'_>,
    raw: &FileScenario,
    sim: &Spanned<FileSim>,
) -> Result<SimWorld, ScenarioError> {
    refuse_site_keys(cx, raw, sim)?;
    let s = sim.get_ref();
    let int = |v: &Spanned<i64>, field: &str, range: RangeInclusive<i64>| {
        if range.contains(v.get_ref()) {
            Ok(*v.get_ref())
        } else {
            let (lo, hi) = (range.start(), range.end());
            cx.err(v.span(), &format!("sim.{field}"), format!("{}: {lo} to {hi}", v.get_ref()))
        }
    };
    let nodes = int(&s.nodes, "nodes", 1..=9)? as usize;
    let tick = cx.duration(&s.tick, "sim.tick", false, Duration::from_millis(100))?;
    let timing = Timing::from_ticks(
        tick,
        int(&s.election_ticks, "election_ticks", 2..=1000)? as u32,
        int(&s.heartbeat_ticks, "heartbeat_ticks", 1..=999)? as u32,
    );
    if let Err(e) = timing.check() {
        return cx.err(sim.span(), &format!("sim.{}", e.field), e.message);
    }
    let latency_max = cx.duration(&s.latency_max, "sim.latency_max", false, MAX_LATENCY)?;
    if latency_max < Duration::from_millis(1) {
        return cx.err(s.latency_max.span(), "sim.latency_max", "at least 1ms");
    }
    let params = SimParams {
        timing,
        latency_max,
        think_max: cx.duration(&s.think_max, "sim.think_max", true, Duration::from_secs(60))?,
        compact_every: int(&s.snapshot_every, "snapshot_every", 10..=1_000_000)? as u64,
        keys: int(&s.keys, "keys", 1..=1000)? as u64,
        max_entries_per_message: int(
            &s.max_entries_per_message,
            "max_entries_per_message",
            1..=1024,
        )? as usize,
        pre_vote: s.pre_vote,
        check_quorum: s.check_quorum,
        lease_reads: s.lease_reads,
        attempts: int(&s.attempts, "attempts", 1..=10)? as usize,
    };
    let transport = match s.transport.get_ref().as_str() {
        "messages" => SimTransport::Messages,
        "wire" => SimTransport::Wire,
        other => {
            let message = format!("{other:?}: messages or wire");
            return cx.err(s.transport.span(), "sim.transport", message);
        }
    };
    let peer_transport = match (s.peer_transport.get_ref().as_str(), transport) {
        ("datagram", SimTransport::Messages) => PeerTransport::Datagram,
        ("framed", _) => PeerTransport::Framed,
        ("grpc", _) => PeerTransport::Grpc,
        (other, _) => {
            let message =
                format!("{other:?}: framed or grpc, or datagram with transport = \"messages\"");
            return cx.err(s.peer_transport.span(), "sim.peer_transport", message);
        }
    };
    let workload = match s.workload.as_ref().map(|w| (w.get_ref().as_str(), w.span())) {
        None | Some(("kv", _)) => Workload::Kv,
        Some(("append", _)) => Workload::Append,
        Some((other, span)) => {
            return cx.err(span, "sim.workload", format!("{other:?}: kv or append"));
        }
    };
    let append_clients = match &s.append_clients {
        Some(n) => int(n, "append_clients", 0..=16)? as usize,
        None => 0,
    };
    let spares = match &s.spares {
        Some(n) => int(n, "spares", 0..=4)? as usize,
        None => 0,
    };
    Ok(SimWorld {
        nodes,
        spares,
        clients: int(&s.clients, "clients", 0..=64)? as usize,
        workload,
        append_clients,
        lock_clients: int(&s.lock_clients, "lock_clients", 0..=16)? as usize,
        watchers: int(&s.watchers, "watchers", 0..=16)? as usize,
        history_kept: int(&s.history_kept, "history_kept", 0..=i64::from(u32::MAX))?,
        params,
        transport,
        peer_transport,
    })
}

/// The longest one-way latency a drawn world may have.
const MAX_LATENCY: Duration = Duration::from_secs(10);

/// A `[sim]` file has no sites, links, groups, timing, Raft options or leader of its own.
fn refuse_site_keys(
    cx: &Ctx<'_>,
    raw: &FileScenario,
    sim: &Spanned<FileSim>,
) -> Result<(), ScenarioError> {
    let present = [
        ("leader", raw.leader.is_some()),
        ("timing", raw.timing.is_some()),
        ("raft", raw.raft.is_some()),
        ("site", raw.sites.is_some()),
        ("link", !raw.links.is_empty()),
        ("clients", !raw.clients.is_empty()),
        ("locks", !raw.locks.is_empty()),
    ];
    match present.iter().find(|(_, there)| *there) {
        Some((key, _)) => cx.err(
            sim.span(),
            key,
            format!("a scenario with [sim] takes its world from it: remove `{key}`, or [sim]"),
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::file::{parse, to_toml};
    use crate::scenario::{Action, Target};
    use crate::sim::Workload;

    const WORLD: &str = "name = \"drawn\"\nduration = \"10s\"\nseed = 7\n\n[sim]\nnodes = 3\n\
        clients = 4\nlock_clients = 1\nwatchers = 2\nhistory_kept = 100\ntick = \"10ms\"\n\
        election_ticks = 12\nheartbeat_ticks = 3\nlatency_max = \"7ms\"\nthink_max = \"23ms\"\n\
        keys = 3\nattempts = 2\npre_vote = true\ncheck_quorum = false\nlease_reads = true\n\
        max_entries_per_message = 4\nsnapshot_every = 200\ntransport = \"messages\"\n\
        peer_transport = \"datagram\"\n";

    fn with(extra: &str) -> String {
        format!("{WORLD}{extra}")
    }

    #[test]
    fn a_drawn_world_and_its_primitives_round_trip() {
        let text = with(concat!(
            "\n[expect]\nraft = [\"leader-elected\"]\n",
            "\n[[event]]\nat = \"1235ms\"\nnote = \"start partition: n1-/->{n2}\"\n",
            "\n[[event]]\nat = \"1235ms\"\ncut = [[\"n1\", \"n2\"]]\n",
            "\n[[event]]\nat = \"2.5s\"\nbetween = [\"n1\", \"n3\"]\nloss = 0.08238614433903121\n",
            "\n[[event]]\nat = \"3s\"\nnode = \"n2\"\njump = \"+12.345678ms\"\n",
            "\n[[event]]\nat = \"4s\"\nuncut = [[\"n1\", \"n2\"]]\n",
        ));
        let s = parse(&text, "drawn").unwrap_or_else(|e| panic!("{e}"));
        let world = s.sim.as_ref().expect("[sim]");
        assert_eq!((world.nodes, world.clients, world.params.keys), (3, 4, 3));
        // Written before the append workload: kv, none beside.
        assert_eq!((world.workload, world.append_clients), (Workload::Kv, 0));
        assert_eq!(s.nodes, ["n1", "n2", "n3"]);
        assert_eq!(s.expect.raft, ["leader-elected"]);
        assert_eq!(
            s.events[2].action,
            Action::Loss(Target::Node(0), Target::Node(2), 0.08238614433903121)
        );
        let jump = std::time::Duration::from_nanos(12_345_678);
        assert_eq!(s.events[3].action, Action::Jump(1, jump));
        let mut again = parse(&to_toml(&s), "written").unwrap_or_else(|e| panic!("{e}"));
        for (a, b) in again.events.iter_mut().zip(&s.events) {
            a.line = b.line;
        }
        assert_eq!(again, s, "{}", to_toml(&s));
        let mut appending = s.clone();
        let world = appending.sim.as_mut().expect("[sim]");
        (world.workload, world.append_clients) = (Workload::Append, 3);
        let again = parse(&to_toml(&appending), "written").unwrap_or_else(|e| panic!("{e}"));
        let world = again.sim.as_ref().expect("[sim]");
        assert_eq!((world.workload, world.append_clients), (Workload::Append, 3));
    }

    #[test]
    fn a_drawn_world_refuses_what_it_cannot_mean() {
        for (extra, field, says) in [
            ("\n[[site]]\nname = \"a\"\nnodes = [\"n1\"]\n", "site", "takes its world from it"),
            ("\n[timing]\nelection_timeout = \"1s\"\n", "timing", "remove `timing`"),
            ("\n[expect]\n\"naive-failover\" = [\"leader-elected\"]\n", "expect", "raft only"),
            ("\n[[event]]\nat = \"1s\"\ncrash = \"n4\"\n", "event[0].crash", "unknown node"),
            ("\n[[event]]\nat = \"1s\"\nnote = \"two\\nlines\"\n", "event[0].note", "one line"),
            (
                "\n[[event]]\nat = \"1s\"\nbetween = [\"n1\", \"n1\"]\nloss = 0.5\n",
                "event[0].between",
                "both ends",
            ),
        ] {
            let e = parse(&with(extra), "drawn").expect_err(extra);
            assert_eq!(e.field, field, "{extra}: {e}");
            assert!(e.message.contains(says), "{extra}: {e}");
        }
        for (from, to, field, says) in [
            ("nodes = 3", "nodes = 10", "sim.nodes", "1 to 9"),
            (
                "transport = \"messages\"",
                "transport = \"wire\"",
                "sim.peer_transport",
                "datagram with",
            ),
            (
                "transport = \"messages\"",
                "transport = \"pigeon\"",
                "sim.transport",
                "messages or wire",
            ),
            (
                "heartbeat_ticks = 3",
                "heartbeat_ticks = 12",
                "sim.heartbeat",
                "shorter than the election",
            ),
            ("latency_max = \"7ms\"", "latency_max = \"0.5ms\"", "sim.latency_max", "at least 1ms"),
            ("clients = 4", "clients = 4\nworkload = \"bank\"", "sim.workload", "kv or append"),
            ("clients = 4", "clients = 4\nappend_clients = 17", "sim.append_clients", "0 to 16"),
        ] {
            let e = parse(&WORLD.replace(from, to), "drawn").expect_err(to);
            assert_eq!(e.field, field, "{to}: {e}");
            assert!(e.message.contains(says), "{to}: {e}");
        }
    }
}
