//! Who receives whose media: the media plan the focus hands to the SFU.
//!
//! For now every participant receives everyone else (SPEC §3: the focus decides, the SFU
//! carries it out); last-N, hard mutes and roles will narrow it here, in one pure function.

use super::ParticipantId;

/// For each participant, the participants whose audio and video they receive.
pub fn everyone_receives_everyone(
    participants: &[ParticipantId],
) -> Vec<(ParticipantId, Vec<ParticipantId>)> {
    participants
        .iter()
        .map(|receiver| {
            let publishers = participants
                .iter()
                .filter(|p| *p != receiver)
                .cloned()
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
        let plan = everyone_receives_everyone(&ids);
        assert_eq!(plan.len(), 3);
        for (receiver, publishers) in plan {
            assert_eq!(publishers.len(), 2);
            assert!(!publishers.contains(&receiver));
        }
        assert!(everyone_receives_everyone(&ids[..1])[0].1.is_empty());
    }
}
