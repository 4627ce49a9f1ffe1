// Camera and microphone toggle buttons (pre-join screen and meeting controls).
// The accessible name stays constant ("Microphone"); aria-pressed carries the
// state, as the ARIA toggle-button pattern asks.

export function setPressed(button, on) {
  button.setAttribute('aria-pressed', on ? 'true' : 'false');
}

export function isPressed(button) {
  return button.getAttribute('aria-pressed') === 'true';
}
