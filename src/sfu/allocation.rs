//! Which layer of each video source one receiver gets: the receiver's bandwidth shared out by
//! priority, capped by the size at which it shows each tile, and limited to its last-N.
//!
//! Sources come in order of relevance (a shared screen, then the current speaker, then pinned
//! tiles, then the others by how recently they spoke). The first `last_n` of them are eligible;
//! the rest get no video (audio is never affected). Every eligible source first gets its lowest
//! layer while the budget lasts, the most relevant one even beyond it (a receiver always sees the
//! speaker); then, in the same order, each is raised to the best layer that fits what is left and
//! is not larger than the tile. Moving up costs a margin more than staying, so a receiver near a
//! layer's rate does not flap between two. Pure: recomputed a few times a second per receiver.

/// One simulcast layer (or the only stream of a source without simulcast), as measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOffer {
    pub ssrc: u32,
    pub bitrate_bps: u64,
    /// The picture height, when a keyframe said it.
    pub height: Option<u16>,
}

/// A video source the receiver could get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The source's layers that are being published now, in any order.
    pub layers: Vec<LayerOffer>,
    /// The height at which the receiver shows it: `None` when the receiver has not said,
    /// `Some(0)` when it does not show it at all.
    pub shown_height: Option<u16>,
    /// The layer the receiver is on now.
    pub current: Option<u32>,
}

/// How much more a layer above the current one must fit, to keep switches rare.
const UPGRADE_MARGIN: f64 = 1.15;

/// The chosen layer (an SSRC) per candidate, or `None`; `candidates` are in priority order.
pub fn allocate(
    budget_bps: u64,
    candidates: &[Candidate],
    last_n: Option<usize>,
) -> Vec<Option<u32>> {
    let mut chosen: Vec<Option<usize>> = vec![None; candidates.len()];
    // Layers of each candidate, lowest bitrate first, limited to what the tile can show.
    let ladders: Vec<Vec<LayerOffer>> = candidates
        .iter()
        .map(|c| {
            let mut layers = c.layers.clone();
            layers.sort_by_key(|l| (l.bitrate_bps, l.height));
            if let Some(shown) = c.shown_height.filter(|h| *h > 0) {
                // Keep every layer up to the first that is at least as tall as the tile.
                if let Some(enough) = layers
                    .iter()
                    .position(|l| l.height.is_some_and(|h| h >= shown))
                {
                    layers.truncate(enough + 1);
                }
            }
            layers
        })
        .collect();
    let eligible = |i: usize| {
        last_n.is_none_or(|n| i < n)
            && candidates[i].shown_height != Some(0)
            && !ladders[i].is_empty()
    };
    let cost = |i: usize, layer: &LayerOffer| -> f64 {
        let upgrade = match candidates[i].current {
            Some(current) => ladders[i]
                .iter()
                .position(|l| l.ssrc == current)
                .is_none_or(|at| ladders[i].iter().position(|l| l.ssrc == layer.ssrc) > Some(at)),
            None => true,
        };
        layer.bitrate_bps as f64 * if upgrade { UPGRADE_MARGIN } else { 1.0 }
    };
    let mut left = budget_bps as f64;
    for i in 0..candidates.len() {
        if !eligible(i) {
            continue;
        }
        let lowest = &ladders[i][0];
        let c = cost(i, lowest);
        if c <= left || chosen.iter().all(Option::is_none) {
            chosen[i] = Some(0);
            left -= lowest.bitrate_bps as f64;
        }
    }
    for i in 0..candidates.len() {
        let Some(at) = chosen[i] else {
            continue;
        };
        let base = ladders[i][at].bitrate_bps as f64;
        for up in (at + 1..ladders[i].len()).rev() {
            let extra = cost(i, &ladders[i][up]) - base;
            if extra <= left {
                left -= ladders[i][up].bitrate_bps as f64 - base;
                chosen[i] = Some(up);
                break;
            }
        }
    }
    chosen
        .iter()
        .enumerate()
        .map(|(i, c)| c.map(|at| ladders[i][at].ssrc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulcast(base: u32) -> Vec<LayerOffer> {
        vec![
            LayerOffer {
                ssrc: base + 2,
                bitrate_bps: 1_200_000,
                height: Some(720),
            },
            LayerOffer {
                ssrc: base,
                bitrate_bps: 150_000,
                height: Some(180),
            },
            LayerOffer {
                ssrc: base + 1,
                bitrate_bps: 450_000,
                height: Some(360),
            },
        ]
    }

    fn candidate(base: u32) -> Candidate {
        Candidate {
            layers: simulcast(base),
            shown_height: None,
            current: None,
        }
    }

    #[test]
    fn the_budget_decides_the_layer() {
        assert_eq!(allocate(250_000, &[candidate(10)], None), vec![Some(10)]);
        assert_eq!(allocate(600_000, &[candidate(10)], None), vec![Some(11)]);
        assert_eq!(allocate(3_000_000, &[candidate(10)], None), vec![Some(12)]);
        // Even a starved receiver sees its most relevant source.
        assert_eq!(
            allocate(50_000, &[candidate(10), candidate(20)], None),
            vec![Some(10), None]
        );
    }

    #[test]
    fn everyone_gets_a_low_layer_before_anyone_gets_a_high_one() {
        let c = [candidate(10), candidate(20), candidate(30)];
        assert_eq!(
            allocate(1_000_000, &c, None),
            vec![Some(11), Some(20), Some(30)]
        );
        assert_eq!(
            allocate(2_000_000, &c, None),
            vec![Some(12), Some(21), Some(30)]
        );
    }

    #[test]
    fn a_small_tile_gets_a_small_layer_and_a_hidden_one_none() {
        let mut small = candidate(10);
        small.shown_height = Some(200);
        let mut hidden = candidate(20);
        hidden.shown_height = Some(0);
        assert_eq!(
            allocate(10_000_000, &[small, hidden], None),
            vec![Some(11), None]
        );
    }

    #[test]
    fn last_n_limits_the_videos() {
        let c = [candidate(10), candidate(20), candidate(30), candidate(40)];
        let got = allocate(10_000_000, &c, Some(2));
        assert_eq!(got, vec![Some(12), Some(22), None, None]);
    }

    #[test]
    fn staying_is_cheaper_than_moving_up() {
        let mut on_mid = candidate(10);
        on_mid.current = Some(11);
        // 480 kbit/s keeps the mid layer (450) but would not be enough to move up to it.
        assert_eq!(allocate(480_000, &[on_mid], None), vec![Some(11)]);
        assert_eq!(allocate(480_000, &[candidate(10)], None), vec![Some(10)]);
    }

    #[test]
    fn a_source_without_simulcast_is_its_only_layer() {
        let single = Candidate {
            layers: vec![LayerOffer {
                ssrc: 5,
                bitrate_bps: 800_000,
                height: None,
            }],
            shown_height: Some(90),
            current: None,
        };
        assert_eq!(allocate(100_000, &[single], None), vec![Some(5)]);
    }
}
