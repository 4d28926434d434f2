//! `[[link]]`: latency and loss between two sites.

use toml::Spanned;

use super::names::Names;
use super::raw::FileLink;
use super::{Ctx, ScenarioError};
use crate::scenario::{Latency, Link};

/// A loss rate in 0..1.
pub(super) fn loss(cx: &Ctx<'_>, v: &Spanned<f64>, field: &str) -> Result<f64, ScenarioError> {
    cx.within(v, field, 0.0..=1.0, "not a rate in 0..1")
}

/// The validated links; a pair with no `latency` gets `default_latency`.
pub(super) fn parse(
    cx: &Ctx<'_>,
    names: &Names<'_>,
    file_links: &[Spanned<FileLink>],
    default_latency: Latency,
) -> Result<Vec<Link>, ScenarioError> {
    let mut links: Vec<Link> = Vec::new();
    for (i, link) in file_links.iter().enumerate() {
        let l = link.get_ref();
        let field = format!("link[{i}]");
        let (a, b) = names.site_pair(cx, &l.between, &format!("{field}.between"))?;
        if links.iter().any(|x| (x.a, x.b) == (a, b) || (x.a, x.b) == (b, a)) {
            let message = "this pair of sites is linked twice";
            return cx.err(l.between.span(), &format!("{field}.between"), message);
        }
        let latency = match &l.latency {
            Some(v) => cx.latency(v, &format!("{field}.latency"))?,
            None => default_latency,
        };
        let loss = match &l.loss {
            Some(v) => loss(cx, v, &format!("{field}.loss"))?,
            None => 0.0,
        };
        links.push(Link { a, b, latency, loss });
    }
    Ok(links)
}
