//! A run's phases, whatever drives its faults: the world built from the options and the
//! seed's parameters; the fault phase (the workload under the driver's faults, every step
//! checked, liveness judged while a quorum is connected); the heal and the liveness phase;
//! then the checks of what the run left (acknowledged writes, fencing-token order, the
//! history, the watchers' streams).
//!
//! Two drivers: the nemesis, lowering the seed's fault schedule (`raftbed sim`), and a
//! scenario's timeline of primitives (`raftbed replay` of a file `--emit-scenario` wrote).
//! Both apply faults only through `crate::faults`, before a step or right after one, so a
//! timeline of the primitives a nemesis applied, at the times it applied them, replays its run
//! step for step.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::checks::{self, Event};
use super::liveness::LiveQuorum;
use super::nemesis::{self, Nemesis};
use super::workload;
use super::{
    CLIENT_PORT, RaftProgram, SimOptions, SimParams, SimReport, World, check_history, report,
    sim_now, watchers, world_spec,
};
use crate::faults::Faults;
use crate::rng::SplitMix64;
use crate::transport::net::SimNet;

/// What drives a run's faults.
pub trait Driver {
    /// Before a step: applies the faults that are due.
    fn advance(&mut self, w: &mut World<'_>);
    /// After a step: reacts to the elections the nodes reported.
    fn react(&mut self, _w: &mut World<'_>, _events: Vec<Event>) {}
    /// At the heal: forgets what was still to come (the heal undoes every fault at once).
    fn stop(&mut self);
}

impl Driver for Nemesis {
    fn advance(&mut self, w: &mut World<'_>) {
        Nemesis::advance(self, w);
    }

    fn react(&mut self, w: &mut World<'_>, events: Vec<Event>) {
        Nemesis::react(self, w, events);
    }

    fn stop(&mut self) {
        Nemesis::stop(self);
    }
}

/// What a seed draws before the world is built, in the order the seed's stream draws it:
/// the run's parameters, the fault schedule's generator, and the world's generator (each
/// client and lock client forks it).
pub fn draws(seed: u64) -> (SimParams, SplitMix64, SplitMix64) {
    let mut rng = SplitMix64::new(seed);
    let params = SimParams::derive(&mut rng);
    let schedule = rng.fork();
    (params, schedule, rng)
}

/// Runs one simulation: the world `options` describe (or, with swarm on, the one the seed
/// draws) under the seed's fault schedule.
pub fn run(options: &SimOptions) -> SimReport {
    let drawn;
    let options = match &options.swarm {
        Some(pins) => {
            drawn = options.drawn(pins);
            &drawn
        }
        None => options,
    };
    let (mut params, mut schedule_rng, rng) = draws(options.seed);
    match options.swarm {
        Some(_) => super::swarm::Swarm::draw(options.seed).shape(&mut params),
        // The fixed world turns leases on for the lease bug to have something to break; a
        // swarm run never lets a bug change the world.
        None => params.lease_reads |= options.bugs.lease_no_drift_margin,
    }
    let schedule = nemesis::schedule(
        &mut schedule_rng,
        &options.faults,
        options.nodes,
        options.duration,
        options.density,
    );
    run_world(options, params, rng, |rng| Nemesis::new(schedule, rng.fork()))
}

/// Runs the world of `options` and `params`, built with `rng`, under the driver `driver`
/// makes from what `rng` has left once the world is built.
pub fn run_world<D: Driver>(
    options: &SimOptions,
    params: SimParams,
    mut rng: SplitMix64,
    driver: impl FnOnce(&mut SplitMix64) -> D,
) -> SimReport {
    let wall = Instant::now();
    let spec = world_spec(options, &params);
    let mut world = World::build(&spec, Rc::new(RaftProgram), &mut rng);
    let mut driver = driver(&mut rng);

    let mut live = if params.pre_vote {
        LiveQuorum::new(LiveQuorum::window_for(params.timing.election_timeout))
    } else {
        LiveQuorum::off()
    };
    let safe =
        safety_phase(&mut world, &mut driver, &mut live, options.duration, options.keep_going);
    world.stop_clients();
    let liveness = if safe {
        // Every node, spares too: membership changes may have left few of the first voters.
        let endpoints = spec.nodes.iter().map(|n| format!("{n}:{CLIENT_PORT}")).collect();
        let (bound, net) = (options.liveness_bound, spec.sim_net);
        liveness_phase(&mut world, &mut driver, bound, endpoints, net)
    } else {
        Err(report::LIVENESS_NOT_RUN.into())
    };
    if world.checks().borrow().violations().is_empty() {
        for (client, seq, index) in world.workload().acked.borrow().iter() {
            world.checks().borrow_mut().check_acked(*client, *seq, *index);
        }
    }
    if let Some((earlier, later)) = world.fencing().borrow().token_order_violation() {
        world.checks().borrow_mut().violate(checks::Violation::FencingTokenOrder {
            earlier: (earlier.client, earlier.token, earlier.completed),
            later: (later.client, later.token, later.invoked),
        });
    }
    let history = world.workload().history.borrow().clone();
    let sim_wall = wall.elapsed();
    // The history is checked even after a safety violation: what the clients saw of it is
    // evidence of its own.
    let (single, transactions) = super::append::split_history(&history);
    let resolved = crate::resolved::resolve(&single, world.checks().borrow().committed_log());
    let (result, counts) = check_history(&single, options.check, Some(&resolved));
    let checked = (result, counts, resolved);
    let watch_log =
        (options.watchers > 0 && options.clients > 0).then(|| watch_log(&world, &params));
    let mut report =
        report::build(options, params, &world, liveness, checked, history, sim_wall, wall);
    report.connected_windows = live.judged();
    report.watch = watch_log.as_ref().map(jepsen_lite::watch::WatchLog::check);
    report.watch_log = watch_log;
    report.transactions = transactions;
    report
}

/// What the watchers were sent, the committed history to check it against (rebuilt by
/// applying the committed log's commands to a fresh store, compactions aside) and what each
/// member knew of its leader.
fn watch_log(world: &World<'_>, params: &SimParams) -> jepsen_lite::watch::WatchLog {
    let commands = world.checks().borrow().committed_commands();
    let (kv, compactions) = watchers::replay_keeping_history(commands.iter().map(|c| &c[..]));
    let (committed, known) = watchers::committed(&kv);
    let nanos = |d: Duration| d.as_nanos() as i64;
    let election = params.timing.election_timeout;
    let timelines = world
        .checks()
        .borrow()
        .leader_known()
        .iter()
        .map(|(node, timeline)| {
            let timeline = timeline.iter().map(|(at, knows)| (nanos(*at), *knows)).collect();
            (format!("n{}:{CLIENT_PORT}", node.0), timeline)
        })
        .collect();
    // A request and its answer over the slowest links, twice.
    let leaders = watchers::leaders(election, params.latency_max * 4, timelines);
    let streams = world.watch_streams().borrow().clone();
    jepsen_lite::watch::WatchLog { committed, known, streams, compactions, leaders }
}

/// Runs the workload under the driver's faults until `duration`, judging liveness during the
/// faults as it goes (`live`); false if a check failed.
fn safety_phase(
    w: &mut World<'_>,
    driver: &mut impl Driver,
    live: &mut LiveQuorum,
    duration: Duration,
    keep_going: bool,
) -> bool {
    // The isolated quorum changes only with a fault or a heal: worked out then, not per step.
    let mut quorum = (u64::MAX, None);
    while w.now() < duration {
        driver.advance(w);
        if (!w.step() && !keep_going) || w.broken() {
            return false;
        }
        if quorum.0 != w.generation() {
            quorum = (w.generation(), w.connectivity().isolated_quorum());
        }
        let stuck = live.observe(quorum.1.as_deref(), &w.checks().borrow(), w.now());
        if let Some(violation) = stuck {
            w.checks().borrow_mut().violate(violation);
            if !keep_going {
                return false;
            }
        }
        // A reaction after the last step would be undone by the heal at once.
        let events = w.take_events();
        if w.now() < duration {
            driver.react(w, events);
        }
    }
    w.checks().borrow().violations().is_empty()
}

/// Heals everything, then waits (within the bound) for one leader and a fresh committed write.
fn liveness_phase(
    w: &mut World<'_>,
    driver: &mut impl Driver,
    bound: Duration,
    endpoints: Vec<String>,
    net: SimNet,
) -> Result<Duration, String> {
    let healed_at = w.now();
    driver.stop();
    w.note("heal everything");
    w.heal_all();
    let committed: Rc<Cell<Option<Duration>>> = Rc::new(Cell::new(None));
    let done = committed.clone();
    w.add_client("liveness", async move {
        let mut client = crate::client::Client::new(net, endpoints, u64::MAX);
        client.timeout = Duration::from_secs(1);
        client.attempts = 1;
        let mut value = 0;
        while done.get().is_none() {
            value += 1;
            let tried = client.current();
            if workload::put_once(&mut client, value).await.is_some() {
                done.set(Some(sim_now()));
            }
            // Move on to the next node, unless the client already did: stepping twice
            // would try only every other node.
            if client.current() == tried {
                client.prefer(tried + 1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    });
    let deadline = healed_at + bound;
    while w.now() < deadline {
        if !w.step() {
            return Err("a safety check failed during recovery".into());
        }
        let leaders = w.checks().borrow().leaders_now();
        if let Some(at) = committed.get()
            && leaders.len() == 1
        {
            return Ok(at.saturating_sub(healed_at));
        }
    }
    let leaders = w.checks().borrow().leaders_now();
    Err(match committed.get() {
        None => format!(
            "no fresh write committed within {:.0}s of the heal (leaders: {leaders:?})",
            bound.as_secs_f64()
        ),
        Some(_) => format!(
            "{} nodes still claim leadership {:.0}s after the heal: {leaders:?}",
            leaders.len(),
            bound.as_secs_f64()
        ),
    })
}
