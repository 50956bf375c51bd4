/* The CTC lattice explorer of the book's CTC chapter: plain JavaScript, no kernel, no network.
 *
 * The reader types a labelling l and a number of frames T and sees the lattice of the extended
 * labelling l' (positions s = 1..2U+1 top to bottom, frames t = 1..T left to right), the number of
 * valid paths, and the path they click collapsed by B. A second control steps through the forward
 * variables alpha_t(s) frame by frame for a small random output y (seeded, so a page reload shows
 * the same numbers).
 *
 * The functions on window.CTCExplorer are the ones the page uses; tests/test_figures.py runs them
 * against numbers computed with the course's reference package (_static/ctc-explorer-cases.json).
 */
(function () {
  "use strict";

  const BLANK = "ε";
  const MAX_LABELS = 8;
  const MAX_FRAMES = 16;
  const SVG_NS = "http://www.w3.org/2000/svg";

  /* The classes of a labelling: the blank (id 0), then its distinct letters in order. */
  function symbolsOf(labels) {
    return [BLANK, ...new Set(labels)];
  }

  function labelIds(labels) {
    const symbols = symbolsOf(labels);
    return [...labels].map((letter) => symbols.indexOf(letter));
  }

  /* l': a blank before, between and after the labels (length 2U + 1). */
  function extend(labels) {
    const ext = [BLANK];
    for (const letter of labels) ext.push(letter, BLANK);
    return ext;
  }

  /* May a path go from position s at frame t to s2 at frame t + 1 (1-based)? Stay, move one
   * down, or skip a blank onto a label that differs from the label two positions up. */
  function stepAllowed(ext, s, s2) {
    if (s2 === s || s2 === s + 1) return s2 >= 1 && s2 <= ext.length;
    if (s2 === s + 2 && s2 <= ext.length) {
      return ext[s2 - 1] !== BLANK && ext[s2 - 1] !== ext[s - 1];
    }
    return false;
  }

  /* The map B: merge runs of repeated symbols, then drop the blanks. */
  function collapse(path) {
    let out = "";
    path.forEach((symbol, i) => {
      if (symbol !== BLANK && (i === 0 || symbol !== path[i - 1])) out += symbol;
    });
    return out;
  }

  const key = (t, s) => t + "," + s;

  /* Path counts by dynamic programming (BigInt: exact for any size): forward[t][s] prefixes
   * ending at (t, s), backward[t][s] suffixes starting there. A node is on a valid path when
   * both are non-zero. */
  function lattice(labels, T) {
    const ext = extend(labels);
    const S = ext.length;
    const zeros = () => Array.from({ length: S + 3 }, () => 0n);
    const forward = Array.from({ length: T + 2 }, zeros);
    const backward = Array.from({ length: T + 2 }, zeros);
    forward[1][1] = 1n;
    if (S >= 2) forward[1][2] = 1n;
    for (let t = 2; t <= T; t++) {
      for (let s = 1; s <= S; s++) {
        for (const p of [s, s - 1, s - 2]) {
          if (p >= 1 && stepAllowed(ext, p, s)) forward[t][s] += forward[t - 1][p];
        }
      }
    }
    backward[T][S] = 1n;
    if (S >= 2) backward[T][S - 1] = 1n;
    for (let t = T - 1; t >= 1; t--) {
      for (let s = 1; s <= S; s++) {
        for (const q of [s, s + 1, s + 2]) {
          if (stepAllowed(ext, s, q)) backward[t][s] += backward[t + 1][q];
        }
      }
    }
    const nodes = new Set();
    for (let t = 1; t <= T; t++) {
      for (let s = 1; s <= S; s++) {
        if (forward[t][s] > 0n && backward[t][s] > 0n) nodes.add(key(t, s));
      }
    }
    const edges = [];
    const forbidden = [];
    for (let t = 1; t < T; t++) {
      for (let s = 1; s <= S; s++) {
        if (!nodes.has(key(t, s))) continue;
        for (const s2 of [s, s + 1, s + 2]) {
          if (!nodes.has(key(t + 1, s2))) continue;
          if (stepAllowed(ext, s, s2)) edges.push([t, s, s2]);
          else if (s2 === s + 2 && ext[s2 - 1] !== BLANK) forbidden.push([t, s, s2]);
        }
      }
    }
    const count = T >= 1 ? forward[T][S] + (S >= 2 ? forward[T][S - 1] : 0n) : 0n;
    return { ext, S, T, nodes, edges, forbidden, count };
  }

  function countPaths(labels, T) {
    return lattice(labels, T).count;
  }

  function logAddExp(a, b) {
    if (a === -Infinity) return b;
    if (b === -Infinity) return a;
    const m = Math.max(a, b);
    return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
  }

  /* log alpha (T, 2U+1), as solutions.ctc.ctc_forward: the emission at t included. */
  function forward(logProbs, ids, blank = 0) {
    const T = logProbs.length;
    const ext = [blank];
    for (const id of ids) ext.push(id, blank);
    const S = ext.length;
    const logAlpha = Array.from({ length: T }, () => new Array(S).fill(-Infinity));
    logAlpha[0][0] = logProbs[0][blank];
    if (S > 1) logAlpha[0][1] = logProbs[0][ext[1]];
    for (let t = 1; t < T; t++) {
      for (let s = 0; s < S; s++) {
        let sum = logAlpha[t - 1][s];
        if (s >= 1) sum = logAddExp(sum, logAlpha[t - 1][s - 1]);
        if (s >= 2 && ext[s] !== blank && ext[s] !== ext[s - 2]) {
          sum = logAddExp(sum, logAlpha[t - 1][s - 2]);
        }
        logAlpha[t][s] = sum + logProbs[t][ext[s]];
      }
    }
    return logAlpha;
  }

  /* A small seeded generator (mulberry32), so the "random" output is the same on every load. */
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /* log-softmax of Gaussian scores (T, C). */
  function randomLogProbs(T, C, seed) {
    const uniform = mulberry32(seed);
    const rows = [];
    for (let t = 0; t < T; t++) {
      const scores = [];
      for (let k = 0; k < C; k++) {
        const u1 = 1 - uniform();
        const u2 = uniform();
        scores.push(1.5 * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
      }
      const norm = scores.reduce(logAddExp, -Infinity);
      rows.push(scores.map((x) => x - norm));
    }
    return rows;
  }

  /* Four significant digits, as the page prints every probability. */
  function formatProbability(p) {
    return p === 0 ? "0" : p.toPrecision(4);
  }

  function parseInputs(labels, framesText) {
    if (!/^[a-z]+$/.test(labels) || labels.length > MAX_LABELS) {
      return { error: `Labelling: type 1 to ${MAX_LABELS} lower-case letters a–z.` };
    }
    const T = Number(framesText);
    if (!Number.isInteger(T) || T < 1 || T > MAX_FRAMES) {
      return { error: `Frames T: a whole number from 1 to ${MAX_FRAMES}.` };
    }
    return { labels, T };
  }

  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function svgEl(tag, attrs = {}, text = "") {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text) node.textContent = text;
    return node;
  }

  const instances = [];

  function mount(root) {
    const uid = "cx" + instances.length;  // marker ids, unique on the page
    const state = {
      labels: root.dataset.labels || "hello",
      T: Number(root.dataset.frames || 8),
      seed: Number(root.dataset.seed || 1),
      path: [],
      frame: 0,
    };
    root.textContent = "";
    const controls = el("div", { class: "cx-controls" });
    const labelsInput = el("input", {
      type: "text", value: state.labels, maxlength: String(MAX_LABELS), class: "cx-labels",
      autocomplete: "off", spellcheck: "false", "aria-label": "labelling l",
    });
    const framesInput = el("input", {
      type: "number", value: String(state.T), min: "1", max: String(MAX_FRAMES),
      class: "cx-frames", "aria-label": "number of frames T",
    });
    const labelsField = el("label", {}, "Labelling l ");
    labelsField.append(labelsInput);
    const framesField = el("label", {}, "Frames T ");
    framesField.append(framesInput);
    controls.append(labelsField, framesField);

    const message = el("p", { class: "cx-message", "aria-live": "polite" });
    const summary = el("p", { class: "cx-summary" });
    const countOut = el("output", { class: "cx-count" });
    summary.append("Valid paths (B(π) = l): ", countOut);
    const figure = el("div", { class: "cx-lattice" });
    const pathLine = el("p", { class: "cx-path", "aria-live": "polite" });
    const clearButton = el("button", { type: "button", class: "cx-clear" }, "Clear path");

    const alphaBox = el("div", { class: "cx-alpha-box" });
    const alphaControls = el("div", { class: "cx-controls" });
    const prevButton = el("button", { type: "button", class: "cx-prev" }, "◀ frame");
    const nextButton = el("button", { type: "button", class: "cx-next" }, "frame ▶");
    const newButton = el("button", { type: "button", class: "cx-new" }, "new random y");
    const frameOut = el("output", { class: "cx-frame" });
    alphaControls.append("α step: ", prevButton, nextButton, newButton, frameOut);
    const table = el("table", { class: "cx-alpha" });
    const probability = el("p", { class: "cx-probability" });
    alphaBox.append(alphaControls, table, probability);

    root.append(controls, message, summary, figure, pathLine, clearButton, alphaBox);

    function resetOutput() {
      state.ids = labelIds(state.labels);
      state.symbols = symbolsOf(state.labels);
      state.logProbs = randomLogProbs(state.T, state.symbols.length, state.seed);
      state.logAlpha = forward(state.logProbs, state.ids);
      state.frame = 0;
    }

    function rebuild() {
      const parsed = parseInputs(labelsInput.value.trim(), framesInput.value);
      if (parsed.error) {
        message.textContent = parsed.error;
        root.classList.add("cx-invalid");
        return;
      }
      message.textContent = "";
      root.classList.remove("cx-invalid");
      state.labels = parsed.labels;
      state.T = parsed.T;
      state.path = [];
      state.lattice = lattice(state.labels, state.T);
      resetOutput();
      render();
    }

    function clickNode(t, s) {
      const lat = state.lattice;
      if (!lat.nodes.has(key(t, s))) return;
      const path = state.path.slice(0, t - 1);
      if (path.length !== t - 1) {
        pathLine.dataset.hint = "Click the frames in order, from t = 1.";
        render();
        return;
      }
      if (t > 1 && !lat.edges.some(([u, a, b]) => u === t - 1 && a === path[t - 2] && b === s)) {
        pathLine.dataset.hint = `No allowed step from s = ${path[t - 2]} to s = ${s}.`;
        render();
        return;
      }
      delete pathLine.dataset.hint;
      path.push(s);
      state.path = path;
      render();
    }

    function renderLattice() {
      const lat = state.lattice;
      const cell = 40;
      const left = 44;
      const top = 30;
      const width = left + lat.T * cell;
      const height = top + lat.S * cell;
      const x = (t) => left + (t - 0.5) * cell;
      const y = (s) => top + (s - 0.5) * cell;
      const svg = svgEl("svg", {
        viewBox: `0 0 ${width} ${height}`, role: "img", class: "cx-svg",
        "aria-label": `CTC lattice of ${state.labels} over ${state.T} frames: ` +
          `${lat.count} valid paths`,
      });
      svg.style.maxWidth = width * 1.25 + "px";
      const defs = svgEl("defs");
      for (const [id, colour] of [["cx-arrow", "#777"], ["cx-arrow-path", "#CC79A7"]]) {
        const marker = svgEl("marker", {
          id: id + uid, viewBox: "0 0 10 10", refX: 9, refY: 5, markerUnits: "userSpaceOnUse",
          markerWidth: 9, markerHeight: 9, orient: "auto-start-reverse",
        });
        marker.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
        defs.append(marker);
      }
      svg.append(defs);
      for (let t = 1; t <= lat.T; t++) {
        svg.append(svgEl("text", { x: x(t), y: top - 10, class: "cx-axis" }, String(t)));
      }
      svg.append(svgEl("text", { x: 14, y: top - 10, class: "cx-axis" }, "t"));
      for (let s = 1; s <= lat.S; s++) {
        svg.append(svgEl("text", {
          x: 14, y: y(s) + 5, class: lat.ext[s - 1] === BLANK ? "cx-blank" : "cx-label",
        }, lat.ext[s - 1]));
      }
      const r = 11;
      const line = (t, s, s2, cls, marker) => {
        const dx = x(t + 1) - x(t);
        const dy = y(s2) - y(s);
        const len = Math.hypot(dx, dy);
        return svgEl("line", {
          x1: x(t) + (dx / len) * r, y1: y(s) + (dy / len) * r,
          x2: x(t + 1) - (dx / len) * (r + 1), y2: y(s2) - (dy / len) * (r + 1),
          class: cls, "marker-end": marker ? `url(#${marker}${uid})` : "",
        });
      };
      for (const [t, s, s2] of lat.edges) svg.append(line(t, s, s2, "cx-edge", "cx-arrow"));
      for (const [t, s, s2] of lat.forbidden) svg.append(line(t, s, s2, "cx-forbidden", ""));
      for (let t = 1; t < state.path.length; t++) {
        svg.append(line(t, state.path[t - 1], state.path[t], "cx-path-edge", "cx-arrow-path"));
      }
      const alphaShown = state.frame > 0;
      for (let t = 1; t <= lat.T; t++) {
        const column = alphaShown && t <= state.frame ? state.logAlpha[t - 1].map(Math.exp) : null;
        const columnMax = column ? Math.max(...column) : 0;
        for (let s = 1; s <= lat.S; s++) {
          const valid = lat.nodes.has(key(t, s));
          const onPath = state.path[t - 1] === s;
          let cls = valid ? "cx-node cx-valid" : "cx-node";
          if (onPath) cls += " cx-on-path";
          if (alphaShown && t === state.frame) cls += " cx-current";
          const circle = svgEl("circle", {
            cx: x(t), cy: y(s), r, class: cls, "data-t": t, "data-s": s,
          });
          if (column && columnMax > 0 && !onPath) {
            circle.style.fill = `rgba(0, 114, 178, ${(0.1 + 0.9 * column[s - 1] / columnMax)
              .toFixed(3)})`;
          }
          if (valid) {
            circle.setAttribute("tabindex", "0");
            circle.setAttribute("role", "button");
            circle.setAttribute("aria-label", `frame ${t}, position ${s} (${lat.ext[s - 1]})`);
            circle.addEventListener("click", () => clickNode(t, s));
            circle.addEventListener("keydown", (event) => {
              if (event.key === "Enter" || event.key === " ") {
                event.preventDefault();
                clickNode(t, s);
              }
            });
          }
          svg.append(circle);
        }
      }
      figure.replaceChildren(svg);
    }

    function renderPath() {
      const lat = state.lattice;
      const symbols = state.path.map((s) => lat.ext[s - 1]);
      if (pathLine.dataset.hint) {
        pathLine.textContent = pathLine.dataset.hint;
        return;
      }
      if (!symbols.length) {
        pathLine.textContent = lat.count > 0n
          ? "Click a filled node in frame 1, then one in each next frame, to draw a path."
          : `No path of ${state.T} frames collapses to "${state.labels}": it needs at least ` +
            `${state.labels.length + [...state.labels].filter((c, i, a) => i > 0 && c === a[i - 1])
              .length} frames (a blank between equal labels).`;
        return;
      }
      const done = symbols.length === state.T;
      pathLine.textContent = `π = ${symbols.join(" ")}${done ? "" : " …"}   →   ` +
        `B(π) = "${collapse(symbols)}"${done ? "  ✓ one of the valid paths" : ""}`;
    }

    function renderAlpha() {
      const lat = state.lattice;
      frameOut.textContent = ` t = ${state.frame} of ${state.T}`;
      prevButton.disabled = state.frame <= 0;
      nextButton.disabled = state.frame >= state.T;
      table.replaceChildren();
      const head = el("tr");
      for (const name of ["s", "l′ₛ", "yᵗ(l′ₛ)", "αₜ(s)"]) head.append(el("th", {}, name));
      table.append(head);
      if (state.frame === 0) {
        probability.textContent = "Press “frame ▶” to compute α for frame 1.";
        return;
      }
      const t = state.frame;
      for (let s = 1; s <= lat.S; s++) {
        const symbolId = s % 2 === 1 ? 0 : state.ids[s / 2 - 1];
        const row = el("tr", { "data-s": String(s) });
        row.append(
          el("td", {}, String(s)),
          el("td", {}, lat.ext[s - 1]),
          el("td", { class: "cx-y" }, formatProbability(Math.exp(state.logProbs[t - 1][symbolId]))),
          el("td", { class: "cx-alpha-value" },
            formatProbability(Math.exp(state.logAlpha[t - 1][s - 1]))),
        );
        table.append(row);
      }
      if (t === state.T) {
        const last = state.logAlpha[t - 1];
        const total = lat.S > 1 ? logAddExp(last[lat.S - 1], last[lat.S - 2]) : last[0];
        probability.innerHTML = "";
        probability.append("p(l | x) = α", el("sub", {}, "T"), "(2U+1) + α", el("sub", {}, "T"),
          "(2U) = ", el("output", { class: "cx-p" }, formatProbability(Math.exp(total))));
      } else {
        probability.textContent = "";
      }
    }

    function render() {
      countOut.textContent = state.lattice.count.toString();
      renderLattice();
      renderPath();
      renderAlpha();
    }

    labelsInput.addEventListener("input", rebuild);
    framesInput.addEventListener("input", rebuild);
    clearButton.addEventListener("click", () => {
      state.path = [];
      delete pathLine.dataset.hint;
      render();
    });
    prevButton.addEventListener("click", () => {
      state.frame = Math.max(0, state.frame - 1);
      render();
    });
    nextButton.addEventListener("click", () => {
      state.frame = Math.min(state.T, state.frame + 1);
      render();
    });
    newButton.addEventListener("click", () => {
      state.seed += 1;
      resetOutput();
      render();
    });

    const instance = { root, state, rebuild, clickNode };
    instances.push(instance);
    rebuild();
    return instance;
  }

  window.CTCExplorer = {
    BLANK, symbolsOf, labelIds, extend, stepAllowed, collapse, lattice, countPaths, forward,
    randomLogProbs, formatProbability, mount, instances,
  };

  function mountAll() {
    document.querySelectorAll(".ctc-explorer").forEach(mount);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
