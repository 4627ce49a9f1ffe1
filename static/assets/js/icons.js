// Icons are drawn here as inline SVG (no icon font, nothing from another
// origin). Shapes follow the Feather icon set (MIT licence); the hand and the
// pin are Lucide's (ISC licence, a Feather fork); the signal bars and the stage
// are drawn here. Elements with data-icon="name" in
// the HTML are filled in by fillIcons().

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
  hand: [
    ['path', { d: 'M18 11V6a2 2 0 0 0-4 0' }],
    ['path', { d: 'M14 10V4a2 2 0 0 0-4 0v2' }],
    ['path', { d: 'M10 10.5V6a2 2 0 0 0-4 0v8' }],
    ['path', { d: 'M18 8a2 2 0 1 1 4 0v6a8 8 0 0 1-8 8h-2c-2.8 0-4.5-.86-5.99-2.34l-3.6-3.6a2 2 0 0 1 2.83-2.82L7 15' }],
  ],
  users: [
    ['path', { d: 'M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2' }],
    ['circle', { cx: 9, cy: 7, r: 4 }],
    ['path', { d: 'M23 21v-2a4 4 0 0 0-3-3.87' }],
    ['path', { d: 'M16 3.13a4 4 0 0 1 0 7.75' }],
  ],
  'user-plus': [
    ['path', { d: 'M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2' }],
    ['circle', { cx: 8.5, cy: 7, r: 4 }],
    ['line', { x1: 20, y1: 8, x2: 20, y2: 14 }],
    ['line', { x1: 23, y1: 11, x2: 17, y2: 11 }],
  ],
  shield: [['path', { d: 'M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z' }]],
  lock: [
    ['rect', { x: 3, y: 11, width: 18, height: 11, rx: 2 }],
    ['path', { d: 'M7 11V7a5 5 0 0 1 10 0v4' }],
  ],
  clock: [
    ['circle', { cx: 12, cy: 12, r: 10 }],
    ['polyline', { points: '12 6 12 12 16 14' }],
  ],
  more: [
    ['circle', { cx: 12, cy: 5, r: 1 }],
    ['circle', { cx: 12, cy: 12, r: 1 }],
    ['circle', { cx: 12, cy: 19, r: 1 }],
  ],
  x: [
    ['line', { x1: 18, y1: 6, x2: 6, y2: 18 }],
    ['line', { x1: 6, y1: 6, x2: 18, y2: 18 }],
  ],
  refresh: [
    ['polyline', { points: '23 4 23 10 17 10' }],
    ['path', { d: 'M20.49 15a9 9 0 1 1-2.12-9.36L23 10' }],
  ],
  monitor: [
    ['rect', { x: 2, y: 3, width: 20, height: 14, rx: 2 }],
    ['line', { x1: 8, y1: 21, x2: 16, y2: 21 }],
    ['line', { x1: 12, y1: 17, x2: 12, y2: 21 }],
  ],
  message: [['path', { d: 'M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z' }]],
  send: [
    ['line', { x1: 22, y1: 2, x2: 11, y2: 13 }],
    ['polygon', { points: '22 2 15 22 11 13 2 9 22 2' }],
  ],
  pin: [
    ['path', { d: 'M12 17v5' }],
    [
      'path',
      {
        d: 'M9 10.76a2 2 0 0 1-1.11 1.79l-1.78.9A2 2 0 0 0 5 15.24V16a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-.76a2 2 0 0 0-1.11-1.79l-1.78-.9A2 2 0 0 1 15 10.76V7a1 1 0 0 1 1-1 2 2 0 0 0 0-4H8a2 2 0 0 0 0 4 1 1 0 0 1 1 1z',
      },
    ],
  ],
  // One large picture above a row of small ones.
  stage: [
    ['rect', { x: 2, y: 2, width: 20, height: 13, rx: 2 }],
    ['rect', { x: 2, y: 18, width: 5, height: 4, rx: 1 }],
    ['rect', { x: 9.5, y: 18, width: 5, height: 4, rx: 1 }],
    ['rect', { x: 17, y: 18, width: 5, height: 4, rx: 1 }],
  ],
  // Four bars; zaal.css colours as many as the connection deserves.
  signal: [
    ['line', { x1: 4, y1: 20, x2: 4, y2: 17, class: 'bar bar-1' }],
    ['line', { x1: 9.33, y1: 20, x2: 9.33, y2: 13, class: 'bar bar-2' }],
    ['line', { x1: 14.67, y1: 20, x2: 14.67, y2: 9, class: 'bar bar-3' }],
    ['line', { x1: 20, y1: 20, x2: 20, y2: 4, class: 'bar bar-4' }],
  ],
  'wifi-off': [
    SLASH,
    ['path', { d: 'M16.72 11.06A10.94 10.94 0 0 1 19 12.55' }],
    ['path', { d: 'M5 12.55a10.94 10.94 0 0 1 5.17-2.39' }],
    ['path', { d: 'M10.71 5.05A16 16 0 0 1 22.58 9' }],
    ['path', { d: 'M1.42 9a15.91 15.91 0 0 1 4.7-2.88' }],
    ['path', { d: 'M8.53 16.11a6 6 0 0 1 6.95 0' }],
    ['line', { x1: 12, y1: 20, x2: 12.01, y2: 20 }],
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
