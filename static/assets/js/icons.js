// Icons are drawn here as inline SVG (no icon font, nothing from another
// origin). Shapes follow the Feather icon set (MIT licence). Elements with
// data-icon="name" in the HTML are filled in by fillIcons().

const SVG_NS = 'http://www.w3.org/2000/svg';

const SLASH = ['line', { x1: 2, y1: 2, x2: 22, y2: 22 }];
const MIC = [
  ['path', { d: 'M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3z' }],
  ['path', { d: 'M19 10v2a7 7 0 0 1-14 0v-2' }],
  ['line', { x1: 12, y1: 19, x2: 12, y2: 23 }],
  ['line', { x1: 8, y1: 23, x2: 16, y2: 23 }],
];
const VIDEO = [
  ['path', { d: 'M23 7l-7 5 7 5V7z' }],
  ['rect', { x: 1, y: 5, width: 15, height: 14, rx: 2 }],
];

const SHAPES = {
  mic: MIC,
  'mic-off': [...MIC, SLASH],
  video: VIDEO,
  'video-off': [...VIDEO, SLASH],
  leave: [
    ['path', { d: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4' }],
    ['polyline', { points: '16 17 21 12 16 7' }],
    ['line', { x1: 21, y1: 12, x2: 9, y2: 12 }],
  ],
  globe: [
    ['circle', { cx: 12, cy: 12, r: 10 }],
    ['line', { x1: 2, y1: 12, x2: 22, y2: 12 }],
    ['path', { d: 'M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z' }],
  ],
  copy: [
    ['rect', { x: 9, y: 9, width: 13, height: 13, rx: 2 }],
    ['path', { d: 'M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1' }],
  ],
  volume: [
    ['polygon', { points: '11 5 6 9 2 9 2 15 6 15 11 19 11 5' }],
    ['path', { d: 'M15.5 8.5a5 5 0 0 1 0 7' }],
    ['path', { d: 'M19 5a10 10 0 0 1 0 14' }],
  ],
};

/** A decorative icon (aria-hidden): the surrounding button or label carries the accessible name. */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon icon-${name}`);
  for (const [tag, attrs] of SHAPES[name] || []) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    svg.appendChild(el);
  }
  return svg;
}

export function fillIcons(root = document) {
  for (const el of root.querySelectorAll('[data-icon]')) {
    if (!el.firstElementChild) el.appendChild(icon(el.dataset.icon));
  }
}
