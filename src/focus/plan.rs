//! Who receives whose media: the media plan the focus hands to the SFU.
//!
//! Every participant receives everyone else (SPEC §3: the focus decides, the SFU carries it
//! out), most relevant first: the current dominant speaker, then earlier speakers, most recent
//! first, then everyone else in the order they joined. The SFU reads that order when a
//! receiver's bandwidth or last-N does not allow every video (hard mutes act on the SFU's
//! publisher gate, not here). One pure function.

use crate::ids::ParticipantId;

/// For each participant, the participants whose audio and video they receive, in order of
/// relevance. `speakers` are the dominant speakers, most recent first.
pub fn everyone_receives_everyone(
    participants: &[ParticipantId],
    speakers: &[ParticipantId],
) -> Vec<(ParticipantId, Vec<ParticipantId>)> {
    let mut ranked: Vec<&ParticipantId> = speakers
        .iter()
        .filter(|s| participants.contains(s))
        .collect();
    ranked.extend(participants.iter().filter(|p| !speakers.contains(p)));
    participants
        .iter()
        .map(|receiver| {
            let publishers = ranked
                .iter()
                .filter(|p| **p != receiver)
                .map(|p| (*p).clone())
                .collect();
            (receiver.clone(), publishers)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_receives_themselves() {
        let ids: Vec<ParticipantId> = (0..3).map(|_| ParticipantId::random()).collect();
        let plan = everyone_receives_everyone(&ids, &[]);
        assert_eq!(plan.len(), 3);
        for (receiver, publishers) in plan {
            assert_eq!(publishers.len(), 2);
            assert!(!publishers.contains(&receiver));
        }
        assert!(everyone_receives_everyone(&ids[..1], &[])[0].1.is_empty());
    }

    #[test]
    fn speakers_come_first_most_recent_first() {
        let ids: Vec<ParticipantId> = (0..5).map(|_| ParticipantId::random()).collect();
        let gone = ParticipantId::random();
        let speakers = [ids[3].clone(), gone, ids[1].clone()];
        let plan = everyone_receives_everyone(&ids, &speakers);
        assert_eq!(
            plan[0].1,
            vec![
                ids[3].clone(),
                ids[1].clone(),
                ids[2].clone(),
                ids[4].clone()
            ]
        );
        assert_eq!(
            plan[3].1,
            vec![
                ids[1].clone(),
                ids[0].clone(),
                ids[2].clone(),
                ids[4].clone()
            ]
        );
    }
}
