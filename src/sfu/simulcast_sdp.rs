//! Keeping a publisher's simulcast layers bound across renegotiation.
//!
//! A browser's simulcast layers are declared in SDP by rid only (`a=rid`, `a=simulcast`), without
//! SSRCs: the `rtc` crate binds each layer's SSRC when the first packets arrive carrying the rid
//! header extension. Browsers stop sending that extension once the server's receiver reports have
//! acknowledged the SSRC. But `rtc` rebuilds the receiving track of every m-line described with a
//! track on each remote description it applies, and forgets those bindings: after the next
//! renegotiation (the server adds someone else's video to this client) the layers' packets can no
//! longer be placed, and the publisher's video is lost to everyone.
//!
//! The server only ever offers after the client's one publishing offer, so in the client's later
//! answers the sending m-lines say nothing new. This removes their track identity (`a=msid`,
//! without which `rtc` finds no track to rebuild there) before `rtc` sees the answer, so `rtc`
//! leaves the bound receiver as it is. The rids stay: `rtc`'s next offers repeat them, and a
//! browser offered no simulcast for its sending m-line would fall back to a single layer. Pure
//! text in, text out; the client's own description is untouched.

/// Attributes that make `rtc` rebuild an m-line's receiving track.
const TRACK_ATTRIBUTES: &[&str] = &["a=msid:", "a=ssrc:", "a=ssrc-group:"];

/// `answer` with the track identity removed from every m-line that publishes simulcast.
pub fn keep_simulcast_bindings(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len());
    for (index, section) in answer.split("\r\nm=").enumerate() {
        if index > 0 {
            out.push_str("\r\nm=");
        }
        let publishes_simulcast = index > 0 && section.contains("\r\na=simulcast:");
        if !publishes_simulcast {
            out.push_str(section);
            continue;
        }
        let mut first = true;
        for line in section.split("\r\n") {
            if TRACK_ATTRIBUTES.iter().any(|a| line.starts_with(a)) {
                continue;
            }
            if !first {
                out.push_str("\r\n");
            }
            out.push_str(line);
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:s a\r\na=ssrc:11 cname:x\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:s v\r\n\
        a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n";

    #[test]
    fn only_the_simulcast_m_line_loses_its_track_identity() {
        let kept = keep_simulcast_bindings(ANSWER);
        let sections: Vec<&str> = kept.split("\r\nm=").collect();
        assert_eq!(sections.len(), 4);
        assert!(sections[0].ends_with("a=group:BUNDLE 0 1 2"));
        assert!(sections[1].contains("a=msid:s a") && sections[1].contains("a=ssrc:11"));
        assert_eq!(
            sections[2],
            "video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n\
             a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f"
        );
        assert_eq!(
            sections[3],
            "video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn an_answer_without_simulcast_is_unchanged() {
        let plain = ANSWER.replace("a=simulcast:send q;h;f\r\n", "");
        assert_eq!(keep_simulcast_bindings(&plain), plain);
    }
}
