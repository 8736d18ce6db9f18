// The drawing pad: pointer events (mouse, touch and pen alike), undo and clear, and the
// PNG that is sent for recognition.

/**
 * Line width as a fraction of the pad's side. The server crops the ink and scales it to
 * 20 of 28 pixels, as MNIST was made; MNIST strokes are 2-3 of those pixels wide, which a
 * digit filling most of the pad gets from a line 7.5% of the side (10.5 px on 140 px).
 */
const STROKE = 0.075;
const INK = "#000";
const PAPER = "#fff";
/**
 * Side of the exported PNG: a fixed size, whatever the screen's pixel density. Five times
 * the model's 28 px keeps every stroke's shape; a larger export only makes the upload, its
 * decoding on the server and the stored original larger.
 */
const EXPORT_SIDE = 140;

/** Paints strokes (lists of [x, y] in 0..1) onto a square context of `side` pixels. */
function paint(context, strokes, side) {
  context.fillStyle = PAPER;
  context.fillRect(0, 0, side, side);
  context.fillStyle = INK;
  context.strokeStyle = INK;
  context.lineWidth = STROKE * side;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const points of strokes) {
    const at = ([x, y]) => [x * side, y * side];
    if (points.length === 1) {
      const [x, y] = at(points[0]);
      context.beginPath();
      context.arc(x, y, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    // Quadratic curves through the midpoints: smooth lines from jagged pointer samples.
    context.beginPath();
    context.moveTo(...at(points[0]));
    for (let i = 1; i < points.length - 1; i++) {
      const [x, y] = at(points[i]);
      const [nx, ny] = at(points[i + 1]);
      context.quadraticCurveTo(x, y, (x + nx) / 2, (y + ny) / 2);
    }
    context.lineTo(...at(points[points.length - 1]));
    context.stroke();
  }
}

/** Drawing on a <canvas>; dispatches "change" after every stroke, undo and clear. */
export class DrawingPad extends EventTarget {
  constructor(canvas) {
    super();
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.strokes = [];
    this.active = null; // { pointerId, points } while a stroke is being drawn
    this.frame = 0;

    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      canvas.addEventListener(type, (event) => this.#up(event));
    }
    // Sharp lines on high-density screens, and after the layout changes the pad's size.
    new ResizeObserver(() => this.#fit()).observe(canvas);
    this.#fit();
  }

  get isEmpty() {
    return this.strokes.length === 0;
  }

  undo() {
    if (this.active) return;
    this.strokes.pop();
    this.#changed();
  }

  clear() {
    this.active = null;
    this.strokes = [];
    this.#changed();
  }

  /** The drawing as a PNG data URL, black ink on a white background. */
  toDataURL() {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = EXPORT_SIDE;
    paint(canvas.getContext("2d"), this.strokes, EXPORT_SIDE);
    return canvas.toDataURL("image/png");
  }

  #fit() {
    const side = Math.round(this.canvas.getBoundingClientRect().width * (window.devicePixelRatio || 1));
    if (side > 0 && side !== this.canvas.width) {
      this.canvas.width = this.canvas.height = side;
    }
    this.#render();
  }

  #render() {
    this.frame = 0;
    paint(this.context, this.strokes, this.canvas.width);
  }

  #schedule() {
    this.frame ||= requestAnimationFrame(() => this.#render());
  }

  #changed() {
    this.#render();
    this.dispatchEvent(new Event("change"));
  }

  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    const clamp = (value) => Math.min(1, Math.max(0, value));
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  }

  #down(event) {
    // One stroke at a time: a second finger or the right mouse button does not draw.
    if (this.active || !event.isPrimary || event.button !== 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.active = { pointerId: event.pointerId, points: [this.#point(event)] };
    this.strokes.push(this.active.points);
    this.#schedule();
  }

  #move(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    event.preventDefault();
    // Fast strokes deliver several samples per frame; keep them all for smooth curves.
    const samples = event.getCoalescedEvents?.() ?? [];
    for (const sample of samples.length ? samples : [event]) {
      this.active.points.push(this.#point(sample));
    }
    this.#schedule();
  }

  #up(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    this.active = null;
    this.#changed();
  }
}
