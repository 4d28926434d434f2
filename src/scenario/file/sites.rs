//! `[[site]]`: the sites, and the nodes in them (1 to 9 in all).

use std::time::Duration;

use toml::Spanned;

use super::raw::FileSite;
use super::{Ctx, ScenarioError};
use crate::scenario::{Latency, MONITOR_HOST, Site};

/// The most nodes a scenario has.
pub(super) const MAX_NODES: usize = 9;

/// The node names, in the order the sites list them, and the sites.
pub(super) fn parse(
    cx: &Ctx<'_>,
    file_sites: Option<&[Spanned<FileSite>]>,
) -> Result<(Vec<String>, Vec<Site>), ScenarioError> {
    let Some(file_sites) = file_sites else {
        return cx.err(0..0, "site", "at least one [[site]] is needed");
    };
    let mut nodes: Vec<String> = Vec::new();
    let mut sites: Vec<Site> = Vec::new();
    for (i, site) in file_sites.iter().enumerate() {
        let site = site.get_ref();
        let field = format!("site[{i}]");
        let name = site.name.get_ref().clone();
        if !valid_name(&name) {
            let message = format!("{name:?}: use letters, digits and '-'");
            return cx.err(site.name.span(), &format!("{field}.name"), message);
        }
        if sites.iter().any(|s| s.name == name) {
            let message = format!("site {name:?} is defined twice");
            return cx.err(site.name.span(), &format!("{field}.name"), message);
        }
        let mut members = Vec::new();
        for node in site.nodes.get_ref() {
            let field = format!("{field}.nodes");
            if !valid_name(node) || node == MONITOR_HOST || node.starts_with("clients-") {
                return cx.err(
                    site.nodes.span(),
                    &field,
                    format!("{node:?} is not a usable node name"),
                );
            }
            if nodes.contains(node) {
                return cx.err(site.nodes.span(), &field, format!("node {node:?} is in two sites"));
            }
            members.push(nodes.len());
            nodes.push(node.clone());
        }
        let latency = match &site.latency {
            Some(l) => cx.latency(l, &format!("{field}.latency"))?,
            None => Latency::fixed(Duration::from_millis(1)),
        };
        sites.push(Site { name, nodes: members, latency });
    }
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        let message = format!("{} nodes: a scenario needs 1 to {MAX_NODES}", nodes.len());
        return cx.err(0..0, "site", message);
    }
    if let Some(clash) = nodes.iter().find(|n| sites.iter().any(|s| &s.name == *n)) {
        return cx.err(0..0, "site", format!("{clash:?} names both a site and a node"));
    }
    Ok((nodes, sites))
}

/// Letters, digits and '-', at most 32 of them.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
