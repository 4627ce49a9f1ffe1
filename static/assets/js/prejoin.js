// The pre-join screen: display name, camera preview, camera/microphone
// toggles and device choice. Resolves when the person presses Join.

import { $ } from './dom.js';
import { setText } from './i18n.js';
import { displayNameError } from './roomname.js';
import * as storage from './storage.js';
import { isPressed, setPressed } from './toggles.js';

/**
 * Shows friendly text for getUserMedia problems ({audio, video, screen?}
 * reasons) in `box`; `withHint` adds that joining without them works too.
 */
export function showMediaErrors(box, errors, withHint = true) {
  box.replaceChildren();
  for (const kind of ['video', 'audio', 'screen']) {
    if (!errors[kind]) continue;
    const p = document.createElement('p');
    setText(p, `media.${kind}.${errors[kind]}`);
    box.appendChild(p);
  }
  if (box.childElementCount && withHint) {
    const p = document.createElement('p');
    setText(p, 'media.joinWithout');
    box.appendChild(p);
  }
  box.hidden = !box.childElementCount;
}

export class Prejoin {
  constructor(media) {
    this.media = media;
    this.form = $('prejoin-form');
    this.video = $('prejoin-video');
    this.preview = $('prejoin-preview');
    this.nameInput = $('prejoin-name');
    this.nameError = $('prejoin-name-error');
    this.nameFromLink = $('prejoin-name-token');
    this.cameraBtn = $('prejoin-camera');
    this.micBtn = $('prejoin-mic');
    this.cameraSelect = $('prejoin-camera-select');
    this.micSelect = $('prejoin-mic-select');
    this.mediaMsg = $('prejoin-media-msg');
    this.joinBtn = $('prejoin-join');
    this.errors = { audio: null, video: null };
    this.resolve = null;

    this.cameraBtn.addEventListener('click', () => this.toggle('video', this.cameraBtn));
    this.micBtn.addEventListener('click', () => this.toggle('audio', this.micBtn));
    this.cameraSelect.addEventListener('change', () => this.choose('video', this.cameraSelect.value));
    this.micSelect.addEventListener('change', () => this.choose('audio', this.micSelect.value));
    this.nameInput.addEventListener('input', () => {
      this.nameError.hidden = true;
      this.nameInput.removeAttribute('aria-invalid');
    });
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
  }

  /**
   * Shows the screen. `want` is the initial {audio, video} choice; `notice`
   * an optional i18n key shown above the form (e.g. after an invalid name);
   * `nameLocked`: the name comes from a signed link (the server uses that one).
   */
  async show({ name, want, notice, nameLocked = false }) {
    this.nameInput.value = name || '';
    this.nameInput.readOnly = nameLocked;
    this.nameFromLink.hidden = !nameLocked;
    this.nameInput.setAttribute(
      'aria-describedby',
      nameLocked ? 'prejoin-name-token prejoin-name-error' : 'prejoin-name-hint prejoin-name-error',
    );
    this.nameLocked = nameLocked;
    this.nameError.hidden = true;
    if (notice) {
      this.nameError.hidden = false;
      setText(this.nameError, notice);
      this.nameInput.setAttribute('aria-invalid', 'true');
    }
    this.joinBtn.disabled = false;
    // A device that stops by itself (unplugged) shows as off in the preview.
    this.media.onEnded = () => this.refresh();
    setPressed(this.cameraBtn, want.video);
    setPressed(this.micBtn, want.audio);
    const done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    this.errors = await this.media.start(want);
    this.refresh();
    await this.fillDevices();
    return done;
  }

  async toggle(kind, button) {
    const on = !isPressed(button);
    setPressed(button, on);
    storage.set(kind === 'video' ? 'cameraOn' : 'micOn', on);
    button.disabled = true;
    this.errors[kind] = await this.media.set(kind, on);
    button.disabled = false;
    this.refresh();
    // Permission may just have been granted: device names become visible.
    this.fillDevices();
  }

  async choose(kind, deviceId) {
    this.errors[kind] = await this.media.choose(kind, deviceId);
    this.refresh();
  }

  refresh() {
    const hasVideo = this.media.isOn('video');
    this.video.srcObject = hasVideo ? new MediaStream([this.media.videoTrack]) : null;
    this.preview.dataset.video = hasVideo ? 'on' : 'off';
    // The toggles show what is really on: one whose device was refused or is
    // missing shows as off, and the message below says why.
    setPressed(this.cameraBtn, hasVideo);
    setPressed(this.micBtn, this.media.isOn('audio'));
    showMediaErrors(this.mediaMsg, this.errors);
  }

  async fillDevices() {
    const devices = await this.media.devices();
    this.fillSelect(this.cameraSelect, devices.video, 'video', 'prejoin.cameraN');
    this.fillSelect(this.micSelect, devices.audio, 'audio', 'prejoin.micN');
  }

  fillSelect(select, list, kind, fallbackKey) {
    const current = (this.media.isOn(kind) && this.media.tracks[kind].getSettings().deviceId) || this.media.deviceIds[kind];
    select.replaceChildren();
    list.forEach((d, i) => {
      const opt = document.createElement('option');
      opt.value = d.deviceId;
      if (d.label) opt.textContent = d.label;
      else setText(opt, fallbackKey, { n: i + 1 });
      select.appendChild(opt);
    });
    if (current && list.some((d) => d.deviceId === current)) select.value = current;
    // Hide a choice of one; keep the field in the layout when there is none, disabled.
    select.disabled = list.length < 2;
    select.closest('.field').hidden = list.length < 2;
  }

  submit() {
    const err = displayNameError(this.nameInput.value);
    if (err) {
      setText(this.nameError, err);
      this.nameError.hidden = false;
      this.nameInput.setAttribute('aria-invalid', 'true');
      this.nameInput.focus();
      return;
    }
    const name = this.nameInput.value.trim();
    // A name from a signed link is not ours to remember.
    if (!this.nameLocked) storage.set('name', name);
    this.joinBtn.disabled = true;
    if (this.resolve) this.resolve({ name });
    this.resolve = null;
  }

  /** The preview must not keep a reference once the meeting takes over the tracks. */
  hide() {
    this.video.srcObject = null;
  }
}
