// The one RTCPeerConnection to the server's SFU (docs/protocol.md).
//
// The client offers exactly once, right after `joined`, with two sendonly
// transceivers (audio, video). After that only the server offers, to add or
// remove the others' tracks, and we answer. All signalling steps go through
// one promise queue so they run strictly one at a time, in arrival order.

export class Call {
  /**
   * @param {object} opts
   * @param {(msg: object) => void} opts.send            sends a signalling message
   * @param {(id: string, stream: MediaStream, track: MediaStreamTrack) => void} opts.onRemoteTrack
   * @param {() => void} opts.onFailed                   media connection failed for good
   */
  constructor({ send, onRemoteTrack, onFailed }) {
    this.send = send;
    this.onFailed = onFailed;
    this.queue = Promise.resolve();
    this.closed = false;
    // No iceServers: Zaal never uses a third-party STUN/TURN server; the
    // server is ICE-lite and reachable on its one UDP port.
    this.pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });

    this.pc.addEventListener('track', (ev) => {
      // The server names each stream after the publishing participant's id.
      const stream = ev.streams[0];
      if (stream) onRemoteTrack(stream.id, stream, ev.track);
    });

    // Candidates found before our offer has gone out wait here, so the
    // server never sees a candidate for a description it does not have yet.
    this.pendingCandidates = [];
    this.offerSent = false;
    this.pc.addEventListener('icecandidate', (ev) => {
      // Trickling is optional (the server learns our address from its
      // connectivity checks) but allowed; an empty string ends the list.
      const c = ev.candidate;
      const msg = {
        type: 'candidate',
        candidate: c ? c.candidate : '',
        sdpMid: c && c.sdpMid !== null ? c.sdpMid : '0',
        sdpMLineIndex: c && c.sdpMLineIndex !== null ? c.sdpMLineIndex : 0,
      };
      if (this.offerSent) this.send(msg);
      else this.pendingCandidates.push(msg);
    });

    this.pc.addEventListener('connectionstatechange', () => {
      if (this.pc.connectionState === 'failed' && !this.closed) this.onFailed();
    });
  }

  enqueue(step) {
    this.queue = this.queue.then(() => (this.closed ? undefined : step())).catch(() => {
      if (!this.closed) this.onFailed();
    });
    return this.queue;
  }

  /**
   * Adds the two transceivers and sends the one publishing offer. A missing
   * track (camera or microphone off) is added as its kind, so it can be
   * switched on later with replaceTrack() and no renegotiation.
   */
  start(localStream, audioTrack, videoTrack) {
    const init = { direction: 'sendonly', streams: [localStream] };
    this.audio = this.pc.addTransceiver(audioTrack || 'audio', init);
    this.video = this.pc.addTransceiver(videoTrack || 'video', init);
    return this.enqueue(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
      this.offerSent = true;
      this.pendingCandidates.splice(0).forEach((msg) => this.send(msg));
    });
  }

  handleAnswer(sdp) {
    return this.enqueue(() => this.pc.setRemoteDescription({ type: 'answer', sdp }));
  }

  handleOffer(sdp) {
    return this.enqueue(async () => {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    });
  }

  /** Switches a published track (or sends nothing with `null`) without renegotiating. */
  replaceTrack(kind, track) {
    const transceiver = kind === 'audio' ? this.audio : this.video;
    if (!transceiver || this.closed) return Promise.resolve();
    return transceiver.sender.replaceTrack(track);
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
