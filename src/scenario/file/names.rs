//! The one resolver of the names a scenario file uses: nodes, sites, and lists of either.

use toml::Spanned;

use super::{Ctx, ScenarioError};
use crate::scenario::{Site, Target};

/// The nodes and sites the file defined.
pub(super) struct Names<'a> {
    pub(super) nodes: &'a [String],
    pub(super) sites: &'a [Site],
}

impl Names<'_> {
    pub(super) fn node(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == name)
    }

    pub(super) fn site(&self, name: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.name == name)
    }

    pub(super) fn unknown_node(&self, name: &str) -> String {
        format!("unknown node {name:?} (nodes: {})", self.nodes.join(", "))
    }

    pub(super) fn unknown_site(&self, name: &str) -> String {
        let names: Vec<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        format!("unknown site {name:?} (sites: {})", names.join(", "))
    }

    /// A site or a node, and the nodes it stands for.
    pub(super) fn target(&self, name: &str) -> Option<(Target, Vec<usize>)> {
        if let Some(s) = self.site(name) {
            Some((Target::Site(s), self.sites[s].nodes.clone()))
        } else {
            self.node(name).map(|n| (Target::Node(n), vec![n]))
        }
    }

    /// The node `value` names.
    pub(super) fn node_field(
        &self,
        cx: &Ctx<'_>,
        value: &Spanned<String>,
        field: &str,
    ) -> Result<usize, ScenarioError> {
        match self.node(value.get_ref()) {
            Some(n) => Ok(n),
            None => cx.err(value.span(), field, self.unknown_node(value.get_ref())),
        }
    }

    /// The site `value` names.
    pub(super) fn site_field(
        &self,
        cx: &Ctx<'_>,
        value: &Spanned<String>,
        field: &str,
    ) -> Result<usize, ScenarioError> {
        match self.site(value.get_ref()) {
            Some(s) => Ok(s),
            None => cx.err(value.span(), field, self.unknown_site(value.get_ref())),
        }
    }

    /// Two different sites.
    pub(super) fn site_pair(
        &self,
        cx: &Ctx<'_>,
        between: &Spanned<Vec<String>>,
        field: &str,
    ) -> Result<(usize, usize), ScenarioError> {
        let names = between.get_ref();
        if names.len() != 2 {
            return cx.err(between.span(), field, "name exactly two sites");
        }
        let site = |name: &str| match self.site(name) {
            Some(s) => Ok(s),
            None => cx.err(between.span(), field, self.unknown_site(name)),
        };
        let (a, b) = (site(&names[0])?, site(&names[1])?);
        if a == b {
            return cx.err(between.span(), field, "a link joins two different sites");
        }
        Ok((a, b))
    }

    /// Two different sites or nodes (a fault between them applies to every pair of their
    /// hosts).
    pub(super) fn target_pair(
        &self,
        cx: &Ctx<'_>,
        between: &Spanned<Vec<String>>,
        field: &str,
    ) -> Result<(Target, Target), ScenarioError> {
        let names = between.get_ref();
        if names.len() != 2 {
            return cx.err(between.span(), field, "name exactly two sites or nodes");
        }
        let target = |name: &str| match self.target(name) {
            Some((t, members)) => Ok((t, members)),
            None => cx.err(between.span(), field, format!("unknown site or node {name:?}")),
        };
        let ((a, na), (b, nb)) = (target(&names[0])?, target(&names[1])?);
        if let Some(n) = na.iter().find(|n| nb.contains(n)) {
            let message =
                format!("{} is on both ends: a link joins two different places", self.nodes[*n]);
            return cx.err(between.span(), field, message);
        }
        Ok((a, b))
    }

    /// The nodes a group talks to, in order of preference: the sites and nodes listed, or by
    /// default every node, its own site's first.
    pub(super) fn talk_to(
        &self,
        cx: &Ctx<'_>,
        value: &Option<Spanned<Vec<String>>>,
        site: usize,
        field: &str,
    ) -> Result<Vec<usize>, ScenarioError> {
        let own = &self.sites[site].nodes;
        let Some(t) = value else {
            let mut list = own.clone();
            list.extend((0..self.nodes.len()).filter(|n| !own.contains(n)));
            return Ok(list);
        };
        let mut list = Vec::new();
        for name in t.get_ref() {
            let Some((_, members)) = self.target(name) else {
                return cx.err(t.span(), field, self.unknown_node(name));
            };
            for n in members {
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        if list.is_empty() {
            return cx.err(t.span(), field, "names no node");
        }
        Ok(list)
    }
}
