// A modal "are you sure?" dialog on the native <dialog> element: focus is
// trapped and Escape cancels, by the browser itself. Cancel has the focus
// first, so pressing Enter by accident never does the destructive thing.

import { setText } from './i18n.js';

let open = null; // the dialog on screen, if any: a second request cancels it first

/**
 * Asks a yes/no question; resolves to true only when the confirm button is pressed.
 * @param {{title: string, text?: string, confirm: string, params?: object, danger?: boolean}} opts i18n keys
 */
export function confirmDialog({ title, text, confirm, params = {}, danger = true }) {
  closeDialog();
  const dialog = document.createElement('dialog');
  dialog.className = 'dialog';
  const id = `dialog-${Date.now()}`;
  dialog.setAttribute('aria-labelledby', `${id}-title`);
  const heading = document.createElement('h2');
  heading.id = `${id}-title`;
  setText(heading, title, params);
  dialog.appendChild(heading);
  if (text) {
    const p = document.createElement('p');
    p.id = `${id}-text`;
    setText(p, text, params);
    dialog.setAttribute('aria-describedby', p.id);
    dialog.appendChild(p);
  }
  const row = document.createElement('div');
  row.className = 'row dialog-actions';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'btn';
  cancel.dataset.action = 'cancel';
  setText(cancel, 'common.cancel');
  const ok = document.createElement('button');
  ok.type = 'button';
  ok.className = danger ? 'btn btn-danger' : 'btn btn-primary';
  ok.dataset.action = 'confirm';
  setText(ok, confirm, params);
  row.append(cancel, ok);
  dialog.appendChild(row);

  const returnTo = document.activeElement;
  return new Promise((resolve) => {
    let answer = false;
    cancel.addEventListener('click', () => dialog.close());
    ok.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (open === dialog) open = null;
      if (returnTo && returnTo.isConnected && typeof returnTo.focus === 'function') returnTo.focus();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    open = dialog;
    dialog.showModal();
    cancel.focus();
  });
}

/** Closes the dialog on screen as cancelled (e.g. the meeting ended meanwhile). */
export function closeDialog() {
  if (open && open.open) open.close();
}
