//! Who is speaking in a conference: dominant-speaker detection from the SFU's voice reports.
//!
//! The SFU classifies every audio frame as voiced or not (from the RFC 6464 audio level each
//! packet carries, against that source's own noise floor) and reports, every
//! [`crate::sfu::VOICE_REPORT_INTERVAL`], which share of each source's frames was voiced. Here those shares become
//! a decision on two time scales, after the idea of Volfin and Cohen's dominant speaker
//! identification: a *medium* window of one second must hold sustained speech — a cough, a door
//! or a 200 ms click cannot fill it — and an *immediate* window shows the challenger is still
//! talking now. While the current speaker goes on talking, a challenger takes over only by
//! clearly out-talking them, and never sooner than [`MIN_DWELL_REPORTS`] after the last change,
//! so that two people talking over each other do not make the stage flap.
//!
//! Pure: it sees only the reports, in order; it never reads a clock, an address or a name.

use std::collections::HashMap;

use crate::ids::ParticipantId;

/// The medium window, in reports (one second at the SFU's cadence).
const MEDIUM_REPORTS: usize = 10;
/// The immediate window, in reports.
const IMMEDIATE_REPORTS: usize = 3;
/// The voiced share of the medium window a challenger needs: 400 ms of speech in the last
/// second. Twice what a 200 ms noise can reach.
const START_SHARE: f32 = 0.4;
/// How much more of the medium window a challenger must fill than a current speaker who is
/// still talking.
const TAKEOVER_MARGIN: f32 = 0.2;
/// Reports between two changes of speaker at the least (one second).
const MIN_DWELL_REPORTS: u32 = 10;
/// How many earlier speakers are remembered, most recent first.
const HISTORY: usize = 64;

/// One source's voiced share per report, the most recent [`MEDIUM_REPORTS`] of them.
#[derive(Debug, Clone, Default)]
struct Voice {
    shares: [f32; MEDIUM_REPORTS],
    next: usize,
}

impl Voice {
    fn push(&mut self, share: f32) {
        self.shares[self.next] = share.clamp(0.0, 1.0);
        self.next = (self.next + 1) % MEDIUM_REPORTS;
    }

    /// The mean share over the last `reports` reports.
    fn score(&self, reports: usize) -> f32 {
        let sum: f32 = (1..=reports)
            .map(|back| self.shares[(self.next + MEDIUM_REPORTS - back) % MEDIUM_REPORTS])
            .sum();
        sum / reports as f32
    }

    fn medium(&self) -> f32 {
        self.score(MEDIUM_REPORTS)
    }

    fn immediate(&self) -> f32 {
        self.score(IMMEDIATE_REPORTS)
    }
}

/// The dominant speaker of one conference and who spoke before.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    voices: HashMap<ParticipantId, Voice>,
    current: Option<ParticipantId>,
    reports_since_change: u32,
    /// Earlier dominant speakers, most recent first (the current one included).
    history: Vec<ParticipantId>,
}

impl SpeakerDetector {
    /// The participant speaking now, if anyone has spoken yet.
    pub fn current(&self) -> Option<&ParticipantId> {
        self.current.as_ref()
    }

    /// Dominant speakers, most recent first: who should stay visible when not everyone can be.
    pub fn history(&self) -> &[ParticipantId] {
        &self.history
    }

    /// Takes one report: each member's voiced share since the last one (a member missing from
    /// `shares` was silent). Returns the new dominant speaker when it changed.
    pub fn report<'a>(
        &mut self,
        members: impl IntoIterator<Item = &'a ParticipantId>,
        shares: impl Fn(&ParticipantId) -> f32,
    ) -> Option<ParticipantId> {
        for id in members {
            self.voices.entry(id.clone()).or_default().push(shares(id));
        }
        self.reports_since_change = self.reports_since_change.saturating_add(1);
        let challenger = self
            .voices
            .iter()
            .filter(|(id, _)| Some(*id) != self.current.as_ref())
            .max_by(|(a_id, a), (b_id, b)| {
                a.medium()
                    .total_cmp(&b.medium())
                    .then(a.immediate().total_cmp(&b.immediate()))
                    .then(b_id.cmp(a_id))
            })?;
        let (id, voice) = challenger;
        let current_medium = self
            .current
            .as_ref()
            .and_then(|c| self.voices.get(c))
            .map_or(0.0, Voice::medium);
        let takes_over = voice.medium() >= START_SHARE
            && voice.immediate() > 0.0
            && voice.medium() >= current_medium + TAKEOVER_MARGIN
            && (self.current.is_none() || self.reports_since_change >= MIN_DWELL_REPORTS);
        if !takes_over {
            return None;
        }
        let id = id.clone();
        self.history.retain(|h| *h != id);
        self.history.insert(0, id.clone());
        self.history.truncate(HISTORY);
        self.current = Some(id.clone());
        self.reports_since_change = 0;
        Some(id)
    }

    /// A member left the conference. Returns true when they were the dominant speaker (nobody
    /// is, until someone else talks).
    pub fn forget(&mut self, id: &ParticipantId) -> bool {
        self.voices.remove(id);
        self.history.retain(|h| h != id);
        if self.current.as_ref() == Some(id) {
            self.current = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `reports` reports in which `talking` have the given voiced share and everyone else
    /// is silent; returns every change with the report number it happened at.
    fn run(
        detector: &mut SpeakerDetector,
        members: &[ParticipantId],
        reports: usize,
        talking: &[(&ParticipantId, f32)],
    ) -> Vec<(usize, ParticipantId)> {
        let mut changes = Vec::new();
        for n in 0..reports {
            let share = |id: &ParticipantId| {
                talking
                    .iter()
                    .find(|(t, _)| *t == id)
                    .map_or(0.0, |(_, s)| *s)
            };
            if let Some(new) = detector.report(members, share) {
                changes.push((n, new));
            }
        }
        changes
    }

    fn members(n: usize) -> Vec<ParticipantId> {
        (0..n).map(|_| ParticipantId::random()).collect()
    }

    /// Speech is not continuous: about 80 % of the frames of someone talking are voiced.
    const SPEECH: f32 = 0.8;

    #[test]
    fn someone_who_starts_talking_becomes_the_speaker_within_a_second() {
        let ids = members(3);
        let mut d = SpeakerDetector::default();
        assert!(
            run(&mut d, &ids, 20, &[]).is_empty(),
            "silence elects nobody"
        );
        let changes = run(&mut d, &ids, 20, &[(&ids[1], SPEECH)]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, ids[1]);
        assert!(changes[0].0 < 10, "after {} reports", changes[0].0 + 1);
        assert_eq!(d.current(), Some(&ids[1]));
    }

    #[test]
    fn the_speaker_changes_when_the_next_one_talks() {
        let ids = members(3);
        let mut d = SpeakerDetector::default();
        run(&mut d, &ids, 30, &[(&ids[0], SPEECH)]);
        assert_eq!(d.current(), Some(&ids[0]));
        // The first stops, the second starts.
        let changes = run(&mut d, &ids, 30, &[(&ids[2], SPEECH)]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, ids[2]);
        assert!(
            changes[0].0 < 20,
            "within two seconds, not {}",
            changes[0].0
        );
        assert_eq!(d.history(), &[ids[2].clone(), ids[0].clone()]);
    }

    #[test]
    fn short_noises_never_take_the_floor() {
        let ids = members(3);
        let mut d = SpeakerDetector::default();
        run(&mut d, &ids, 30, &[(&ids[0], SPEECH)]);
        for _ in 0..10 {
            // 200 ms of a loud noise at someone else's, while the speaker goes on, then while
            // nobody talks: the speaker stays.
            assert!(run(&mut d, &ids, 2, &[(&ids[0], SPEECH), (&ids[1], 1.0)]).is_empty());
            assert!(run(&mut d, &ids, 12, &[(&ids[0], SPEECH)]).is_empty());
            assert!(run(&mut d, &ids, 2, &[(&ids[1], 1.0)]).is_empty());
            assert!(run(&mut d, &ids, 12, &[]).is_empty());
        }
        assert_eq!(d.current(), Some(&ids[0]));
        // Nor does one when nobody has spoken yet.
        let mut fresh = SpeakerDetector::default();
        assert!(run(&mut fresh, &ids, 2, &[(&ids[2], 1.0)]).is_empty());
        assert!(run(&mut fresh, &ids, 20, &[]).is_empty());
        assert_eq!(fresh.current(), None);
    }

    #[test]
    fn two_talking_at_once_do_not_flap() {
        let ids = members(2);
        let mut d = SpeakerDetector::default();
        run(&mut d, &ids, 20, &[(&ids[0], SPEECH)]);
        let changes = run(&mut d, &ids, 100, &[(&ids[0], 0.7), (&ids[1], 0.8)]);
        assert!(changes.is_empty(), "{changes:?}");
        // Clearly out-talked, the floor changes, once.
        let changes = run(&mut d, &ids, 30, &[(&ids[0], 0.3), (&ids[1], 0.9)]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, ids[1]);
    }

    #[test]
    fn a_departed_speaker_is_forgotten() {
        let ids = members(2);
        let mut d = SpeakerDetector::default();
        run(&mut d, &ids, 20, &[(&ids[0], SPEECH)]);
        assert!(d.forget(&ids[0]));
        assert_eq!(d.current(), None);
        assert!(!d.forget(&ids[1]));
        assert!(d.history().is_empty());
        let changes = run(&mut d, &ids[1..], 10, &[(&ids[1], SPEECH)]);
        assert_eq!(changes.len(), 1);
    }
}
