//! Voice activity of one published audio stream, from the audio level its packets carry.
//!
//! Browsers put the level of every audio frame in a header extension (RFC 6464: 0 to 127, in
//! −dBov, 127 is silence). A frame counts as voiced when it is loud in absolute terms and well
//! above this source's own noise floor, so a fan, a hum or a noisy classroom behind one
//! microphone does not make its owner "speak" all the time. The meter only counts; deciding who
//! the dominant speaker is belongs to the focus. Pure, allocation-free and cheap enough for the
//! per-packet path: one lookup in the packet's extensions and a few float operations.

use rtc::rtp;

/// Quieter than −60 dBov is never speech.
const QUIETEST_SPEECH_DBOV: u8 = 60;
/// How far above the noise floor a frame must be to count as voiced, in dB.
const ABOVE_FLOOR_DB: f32 = 10.0;
/// How fast the noise floor follows a louder background, per frame (5 dB/s at 50 frames/s).
/// Speech never lifts it far: its pauses, every second or so, pull the floor back down at once.
/// A fan switched on becomes background within seconds.
const FLOOR_RISE_DB_PER_FRAME: f32 = 0.1;

/// Counts one audio source's frames and voiced frames between two reports.
#[derive(Debug, Clone)]
pub struct VoiceMeter {
    /// The audio-level extension's id on the publisher's connection.
    extension_id: u8,
    /// Loudness (dB above −127 dBov) under which this source's background lies; `None` before
    /// the first frame.
    noise_floor: Option<f32>,
    frames: u16,
    voiced: u16,
}

impl VoiceMeter {
    pub fn new(extension_id: u8) -> Self {
        Self {
            extension_id,
            noise_floor: None,
            frames: 0,
            voiced: 0,
        }
    }

    /// Takes one packet's header into account.
    pub fn observe(&mut self, header: &rtp::header::Header) {
        let Some(level) = audio_level(header, self.extension_id) else {
            return;
        };
        let loudness = f32::from(127 - level);
        let floor = match self.noise_floor {
            Some(floor) if loudness >= floor => (floor + FLOOR_RISE_DB_PER_FRAME).min(loudness),
            Some(_) => loudness,
            // Someone may already be talking when their first frame arrives: the floor starts
            // no higher than the quietest speech and climbs to a real background from there.
            None => loudness.min(f32::from(127 - QUIETEST_SPEECH_DBOV)),
        };
        self.noise_floor = Some(floor);
        self.frames = self.frames.saturating_add(1);
        if level <= QUIETEST_SPEECH_DBOV && loudness >= floor + ABOVE_FLOOR_DB {
            self.voiced = self.voiced.saturating_add(1);
        }
    }

    /// The voiced share of the frames since the last call (0 when none came), and a fresh
    /// count.
    pub fn take_share(&mut self) -> f32 {
        let share = if self.frames == 0 {
            0.0
        } else {
            f32::from(self.voiced) / f32::from(self.frames)
        };
        self.frames = 0;
        self.voiced = 0;
        share
    }
}

/// The level in −dBov (0 loudest, 127 silent) of a packet's audio-level extension.
fn audio_level(header: &rtp::header::Header, extension_id: u8) -> Option<u8> {
    header
        .extensions
        .iter()
        .find(|e| e.id == extension_id)
        .and_then(|e| e.payload.first())
        // The top bit is the sender's own voice-activity flag, which not every browser sets.
        .map(|byte| byte & 0x7F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn header(id: u8, level: u8) -> rtp::header::Header {
        rtp::header::Header {
            extension: true,
            extension_profile: 0xBEDE,
            extensions: vec![rtp::header::Extension {
                id,
                payload: Bytes::copy_from_slice(&[level]),
            }],
            ..Default::default()
        }
    }

    fn feed(meter: &mut VoiceMeter, levels: impl IntoIterator<Item = u8>) {
        for level in levels {
            meter.observe(&header(1, level));
        }
    }

    #[test]
    fn speech_over_silence_is_voiced() {
        let mut meter = VoiceMeter::new(1);
        feed(&mut meter, [127; 10]);
        assert_eq!(meter.take_share(), 0.0);
        // Speech with its pauses: voiced where loud.
        feed(&mut meter, [30, 35, 127, 28, 40]);
        assert_eq!(meter.take_share(), 0.8);
        assert_eq!(meter.take_share(), 0.0, "nothing since the last report");
    }

    #[test]
    fn someone_talking_from_the_first_frame_is_voiced() {
        let mut meter = VoiceMeter::new(1);
        feed(&mut meter, [30; 50]);
        assert_eq!(meter.take_share(), 1.0);
    }

    #[test]
    fn a_background_present_from_the_first_frame_is_soon_not_speech() {
        let mut meter = VoiceMeter::new(1);
        // A fan at −50 dBov from the start: at most the first frames count.
        feed(&mut meter, [50; 10]);
        assert!(meter.take_share() <= 0.1);
        feed(&mut meter, [50; 50]);
        assert_eq!(meter.take_share(), 0.0);
    }

    #[test]
    fn the_voice_activity_flag_bit_is_ignored() {
        let mut meter = VoiceMeter::new(1);
        feed(&mut meter, [0x80 | 127, 0x80 | 30]);
        assert_eq!(meter.take_share(), 0.5);
    }

    #[test]
    fn a_steady_background_stops_counting_as_speech() {
        let mut meter = VoiceMeter::new(1);
        // Quiet, then a loud fan (−45 dBov) switched on for 20 s at 50 frames/s.
        feed(&mut meter, std::iter::repeat_n(110, 100));
        feed(&mut meter, std::iter::repeat_n(45, 1000));
        meter.take_share();
        feed(&mut meter, std::iter::repeat_n(45, 50));
        assert_eq!(meter.take_share(), 0.0, "the fan is background by now");
        // Someone talks over it.
        feed(&mut meter, std::iter::repeat_n(25, 10));
        assert_eq!(meter.take_share(), 1.0);
    }

    #[test]
    fn quiet_sounds_and_other_extensions_are_not_speech() {
        let mut meter = VoiceMeter::new(1);
        feed(&mut meter, [127, 70, 90]);
        assert_eq!(meter.take_share(), 0.0);
        meter.observe(&header(2, 10));
        meter.observe(&rtp::header::Header::default());
        assert_eq!(meter.take_share(), 0.0, "no audio level, no frame");
    }
}
