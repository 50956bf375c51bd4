"""The book's figures (``book/figures``, drawn during the build by ``book/_ext/figures_build.py``)
and the CTC lattice explorer (``book/_static/ctc-explorer.js``).

Without a book: every figure draws something (pixel variance of its PNG), legibly at phone width,
as SVG with its text as text; the CTC figures draw exactly the nodes and transitions of the valid
paths, compared with a brute-force enumeration of the paths; each figure sits on its page with alt
text and a caption. With the session's book (``built_book``): every figure was generated during
the build and shown where it belongs; in headless Chromium the explorer loads without console
errors and its counts and forward variables agree with ``solutions`` (also at 400 px).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import matplotlib.pyplot as plt
import numpy as np
import pytest

# The explorer's browser tests reuse the book tests' HTTP server (the browser is conftest.py's):
# importing the fixture registers it here (``explorer_page`` requests it by name).
from test_book import KNOWN_CONSOLE_NOISE, served_book  # noqa: F401

from solutions.ctc import ctc_collapse, ctc_forward, ctc_loss
from solutions.decode import prefix_beam_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import figures  # noqa: E402 (book/figures, on the path above)
from figures import beam, explorer  # noqa: E402
from figures import ctc as ctc_figures  # noqa: E402
from figures.style import FONT_MIN_PT, MAX_WIDTH_IN  # noqa: E402

BLANK = ctc_figures.BLANK
FIGURE_NAMES = [spec.name for spec in figures.FIGURES]
# A drawing on a white canvas: the grey-level standard deviation of a blank (or nearly blank)
# image is ~0; the sparsest figure here is above 20.
MIN_PIXEL_STD = 10.0
PHONE_WIDTH_PX = 340  # the text column of a 360 px phone screen


@pytest.fixture(scope="module", params=FIGURE_NAMES)
def drawn(request):
    spec = next(s for s in figures.FIGURES if s.name == request.param)
    figure = figures.draw(spec)
    yield spec, figure
    plt.close(figure)


# --------------------------------------------------------------------------- every figure


def test_every_figure_draws_something(drawn):
    spec, figure = drawn
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].mean(axis=-1)  # (H, W) grey
    assert pixels.std() > MIN_PIXEL_STD, f"{spec.name} is blank (pixel std {pixels.std():.1f})"
    assert (pixels < 200).mean() > 0.01, f"{spec.name}: under 1% of the pixels are drawn"


def test_every_figure_is_legible_at_phone_width(drawn):
    spec, figure = drawn
    width_in = figure.get_size_inches()[0]
    assert width_in <= MAX_WIDTH_IN, f"{spec.name} is {width_in} in wide"
    sizes = [t.get_fontsize() for t in figure.findobj(plt.Text) if t.get_text().strip()]
    assert sizes, f"{spec.name} has no text"
    assert min(sizes) >= FONT_MIN_PT, f"{spec.name}: text of {min(sizes)} pt"
    # shown 360 px wide, a point of the figure becomes this many CSS pixels
    px_per_pt = PHONE_WIDTH_PX / (width_in * 72)
    assert min(sizes) * px_per_pt >= 9, f"{spec.name}: text under 9 px on a phone"


def test_svg_keeps_text_as_text_and_is_reproducible(drawn):
    spec, figure = drawn
    svg = figures.svg_bytes(figure)
    assert svg == figures.svg_bytes(figure), f"{spec.name}: two saves differ"
    assert b"<text" in svg, f"{spec.name}: no <text> element"
    assert b"DejaVuSans-" not in svg, f"{spec.name}: text was converted to glyph outlines"


# --------------------------------------------------------------------------- CTC geometry


def brute_force(labels: str, T: int):
    """The valid paths of ``labels`` by enumerating every symbol sequence of length ``T``; each
    path's position in l' at frame t follows from how many labels it has emitted by then (a
    label is the k-th emitted at position 2k, a blank after k labels is at 2k + 1)."""
    alphabet = [BLANK, *dict.fromkeys(labels)]
    walks = []
    for path in itertools.product(alphabet, repeat=T):
        if ctc_figures.collapse(path) != labels:
            continue
        positions = []
        for t in range(1, T + 1):
            emitted = len(ctc_figures.collapse(path[:t]))
            positions.append(2 * emitted + 1 if path[t - 1] == BLANK else 2 * emitted)
        walks.append(tuple(positions))
    nodes = {(t, s) for walk in walks for t, s in enumerate(walk, start=1)}
    edges = {((t, walk[t - 1]), (t + 1, walk[t])) for walk in walks for t in range(1, T)}
    return sorted(walks), nodes, edges


LATTICE_CASES = [("cat", 5), ("abb", 6), ("aa", 4), ("abba", 7), ("hello", 7), ("a", 3),
                 ("ab", 3), ("aab", 5)]


@pytest.mark.parametrize(("labels", "T"), LATTICE_CASES)
def test_lattice_has_exactly_the_nodes_and_transitions_of_the_valid_paths(labels, T):
    walks, nodes, edges = brute_force(labels, T)
    lattice = ctc_figures.lattice(labels, T)
    assert lattice.count == len(walks)
    assert set(lattice.nodes) == nodes
    assert set(lattice.edges) == edges
    assert ctc_figures.valid_paths(labels, T) == walks
    # forbidden: skips between equal labels, between nodes that are on valid paths
    ext = lattice.ext
    expected = {((t, s), (t + 1, s + 2)) for (t, s) in nodes if (t + 1, s + 2) in nodes
                and ext[s - 1] != BLANK and ext[s + 1] == ext[s - 1]}
    assert set(lattice.forbidden) == expected


@pytest.mark.parametrize(("labels", "T"), [("abb", 6), ("cat", 5), ("aab", 5)])
def test_lattice_figure_draws_exactly_the_allowed_transitions(labels, T):
    _, nodes, edges = brute_force(labels, T)
    figure = ctc_figures.lattice_figure(labels, T)
    try:
        gids = [a.get_gid() for a in figure.findobj() if a.get_gid()]
    finally:
        plt.close(figure)
    drawn_nodes = {tuple(map(int, g.split(":")[1:])) for g in gids if g.startswith("node:")}
    drawn_edges = {((t, s), (t + 1, s2)) for t, s, s2 in
                   (map(int, g.split(":")[1:]) for g in gids if g.startswith("edge:"))}
    drawn_forbidden = {(t, s, s2) for t, s, s2 in
                       (map(int, g.split(":")[1:]) for g in gids if g.startswith("forbidden:"))}
    assert drawn_nodes == nodes
    assert drawn_edges == edges
    ext = ctc_figures.extended_labelling(labels)
    for _, s, s2 in drawn_forbidden:
        assert s2 == s + 2 and ext[s - 1] == ext[s2 - 1] != BLANK
    repeats = any(a == b for a, b in itertools.pairwise(labels))
    assert bool(drawn_forbidden) == repeats, "the forbidden skip must show for a repeat"


def test_valid_paths_figure_draws_each_path_once():
    walks, _, _ = brute_force("ab", 3)
    figure = ctc_figures.valid_paths_figure("ab", 3)
    try:
        drawn = {a.get_gid().split(":")[1] for a in figure.findobj()
                 if (a.get_gid() or "").startswith("path:")}
    finally:
        plt.close(figure)
    assert drawn == {"".join(map(str, w)) for w in walks} and len(walks) == 5


def test_collapse_and_path_counts_agree_with_the_reference():
    path = ctc_figures.HELLO_PATH
    ids = {symbol: i for i, symbol in enumerate([BLANK, *dict.fromkeys("helo")])}
    assert ctc_figures.collapse(path) == "hello"
    assert [ids[c] for c in "hello"] == ctc_collapse([ids[c] for c in path])
    for labels, T in LATTICE_CASES:
        assert explorer.path_count(labels, T) == ctc_figures.lattice(labels, T).count


def test_beam_tree_is_computed_by_a_search_that_agrees_with_the_reference():
    frames = beam.traced_prefix_beam_search(beam.EXAMPLE_PROBS, beam_width=2)
    final = [(list(c.prefix), math.log(c.p)) for c in frames[-1] if c.kept]
    reference = prefix_beam_search(np.log(beam.EXAMPLE_PROBS), beam_width=2)
    assert [prefix for prefix, _ in final] == [prefix for prefix, _ in reference]
    np.testing.assert_allclose([s for _, s in final], [s for _, s in reference], rtol=1e-12)
    # a wide beam keeps everything: the probabilities of all labellings then sum to 1
    wide = beam.traced_prefix_beam_search(beam.EXAMPLE_PROBS, beam_width=100)
    assert math.isclose(sum(c.p for c in wide[-1]), 1.0, rel_tol=1e-12)
    figure = beam.beam_tree_figure()
    try:
        gids = [a.get_gid() for a in figure.findobj() if (a.get_gid() or "").startswith("beam:")]
    finally:
        plt.close(figure)
    assert any(g.endswith(":merged") for g in gids), "the tree shows no merge"
    assert any(":pruned" in g for g in gids), "the tree shows no pruning"
    assert len(gids) == sum(len(f) for f in frames)


# --------------------------------------------------------------------------- pages (source)


FIGURE_BLOCK = re.compile(
    r"```\{figure\} /book/figures/_generated/(?P<name>[\w-]+)\.svg\n(?P<body>.*?)\n```", re.S)


def figure_blocks() -> dict[str, tuple[str, dict, str]]:
    """name -> (page, options, caption) of every generated figure shown on a page."""
    blocks = {}
    for page in sorted((ROOT / "book").rglob("*.md")):
        for match in FIGURE_BLOCK.finditer(page.read_text(encoding="utf-8")):
            lines = match["body"].split("\n")
            options = dict(re.match(r":(\w+):\s*(.*)", line).groups()
                           for line in itertools.takewhile(lambda x: x.startswith(":"), lines))
            caption = "\n".join(itertools.dropwhile(lambda x: x.startswith(":"), lines)).strip()
            assert match["name"] not in blocks, f"{match['name']} is shown twice"
            page_id = page.relative_to(ROOT).with_suffix("").as_posix()
            blocks[match["name"]] = (page_id, options, caption)
    return blocks


def test_every_figure_is_on_its_page_with_alt_text_and_a_caption():
    blocks = figure_blocks()
    assert set(blocks) == set(FIGURE_NAMES), "figures drawn but not shown, or shown but not drawn"
    for spec in figures.FIGURES:
        page, options, caption = blocks[spec.name]
        assert page == spec.page, f"{spec.name} is on {page}, registered for {spec.page}"
        assert len(options.get("alt", "")) > 40, f"{spec.name}: no real alt text"
        assert len(caption) > 40, f"{spec.name}: no caption"


# --------------------------------------------------------------------------- the built book


class FigureParser(HTMLParser):
    """The <img> of each <figure> with its alt text and the text of its <figcaption>."""

    def __init__(self):
        super().__init__()
        self.figures: list[dict] = []
        self.in_figure = self.in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.in_figure = True
            self.figures.append({"src": None, "alt": None, "caption": ""})
        elif tag == "img" and self.in_figure:
            self.figures[-1].update(src=attrs.get("src"), alt=attrs.get("alt"))
        elif tag == "figcaption" and self.in_figure:
            self.in_caption = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self.in_figure = False
        elif tag == "figcaption":
            self.in_caption = False

    def handle_data(self, data):
        if self.in_caption:
            self.figures[-1]["caption"] += data


@pytest.mark.book
@pytest.mark.slow
def test_every_figure_is_generated_during_the_build_and_shown_with_alt_and_caption(built_book):
    tracked = subprocess.run(["git", "ls-files", "book/figures/_generated"], cwd=ROOT,
                             capture_output=True, text=True).stdout
    assert not tracked.strip(), "generated figures must not be committed: the build draws them"
    for spec in figures.FIGURES:
        page = built_book.html / f"{spec.page}.html"
        parser = FigureParser()
        parser.feed(page.read_text(encoding="utf-8"))
        shown = [f for f in parser.figures if (f["src"] or "").endswith(f"/{spec.name}.svg")]
        assert len(shown) == 1, f"{spec.name} is not shown once on {spec.page}"
        assert shown[0]["alt"] and len(shown[0]["alt"]) > 40, f"{spec.name}: no alt text"
        assert len(shown[0]["caption"].strip()) > 40, f"{spec.name}: no caption"
        image = (page.parent / shown[0]["src"]).resolve()
        figure = figures.draw(spec)
        try:
            assert image.read_bytes() == figures.svg_bytes(figure), (
                f"{spec.name}: the book's SVG is not the one this code draws")
        finally:
            plt.close(figure)


@pytest.mark.book
@pytest.mark.slow
def test_explorer_cases_are_shipped_beside_the_script(built_book):
    static = built_book.html / "_static"
    assert (static / "ctc-explorer.js").is_file() and (static / "ctc-explorer.css").is_file()
    shipped = json.loads((static / "ctc-explorer-cases.json").read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps({"cases": explorer.cases()}))
    page = (built_book.html / "book/ctc/02-forward-backward.html").read_text(encoding="utf-8")
    assert 'class="ctc-explorer"' in page and "_static/ctc-explorer.js" in page
    other = (built_book.html / "book/ctc/01-alignment.html").read_text(encoding="utf-8")
    assert "ctc-explorer.js" not in other, "only the explorer's page loads its script"


# --------------------------------------------------------------------------- the explorer


EXPLORER_PAGE = "book/ctc/02-forward-backward.html"
# (labelling, frames): a repeat that forces a blank, the book's "hello", and a labelling with no
# repeat at the shortest possible length.
EXPLORER_INPUTS = [("abb", 6), ("hello", 8), ("cat", 3)]


def printed_matches(text: str, value: float) -> bool:
    """Does ``text``, printed with 4 significant digits, show ``value`` (rounding error aside)?"""
    if value == 0:
        return text == "0"
    printed = float(text)
    half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 3)
    return abs(printed - value) <= half_unit * (1 + 1e-6)


@pytest.fixture(scope="module")
def explorer_page(request):
    """The browser on the explorer's page, once the explorer has drawn itself."""
    url = request.getfixturevalue("served_book")
    driver = request.getfixturevalue("browser")
    driver.set_window_size(1280, 1024)
    driver.get_log("browser")  # drop messages of earlier pages
    driver.book_url = url  # where the book is served, for the tests below
    driver.get(urljoin(url, EXPLORER_PAGE))
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function poll() {
          const count = document.querySelector('.ctc-explorer .cx-count');
          if (count && count.textContent) done(true);
          else if (Date.now() - start > 20000) done(false);
          else setTimeout(poll, 50);
        })();""")
    return driver


def set_inputs(driver, labels: str, frames: int) -> None:
    for selector, value in ((".cx-labels", labels), (".cx-frames", str(frames))):
        field = driver.find_element("css selector", f".ctc-explorer {selector}")
        field.clear()
        field.send_keys(value)


def text_of(driver, selector: str) -> str:
    return driver.find_element("css selector", selector).text


@pytest.mark.book
@pytest.mark.slow
def test_explorer_loads_offline_without_console_errors(explorer_page):
    assert text_of(explorer_page, ".ctc-explorer .cx-count") == "28"  # the page's "abb", T = 6
    console = [e["message"] for e in explorer_page.get_log("browser") if e["level"] == "SEVERE"
               and not any(noise in e["message"] for noise in KNOWN_CONSOLE_NOISE)]
    assert not console, f"console errors: {console}"
    resources = explorer_page.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name);")
    assert any("_static/ctc-explorer.js" in r for r in resources)
    remote = [r for r in resources if not r.startswith(explorer_page.book_url)]
    assert not remote, f"requested from the network: {remote}"


@pytest.mark.book
@pytest.mark.slow
def test_explorer_functions_match_the_reference_cases(explorer_page, built_book):
    cases = json.loads((built_book.html / "_static" / "ctc-explorer-cases.json").read_text())
    for case in cases["cases"]:
        result = explorer_page.execute_script("""
            const [labels, T, logProbs, ids] = arguments;
            return {
              count: CTCExplorer.countPaths(labels, T).toString(),
              ids: CTCExplorer.labelIds(labels),
              alpha: CTCExplorer.forward(logProbs, ids).map(row => row.map(Math.exp)),
            };""", case["labels"], case["frames"], case["log_probs"], case["label_ids"])
        assert int(result["count"]) == case["paths"], case["labels"]
        assert result["ids"] == case["label_ids"], case["labels"]
        # the same recursion in float64 in both languages: equal up to rounding
        np.testing.assert_allclose(result["alpha"], case["alpha"], rtol=1e-12, atol=0,
                                   err_msg=case["labels"])


@pytest.mark.book
@pytest.mark.slow
@pytest.mark.parametrize(("labels", "T"), EXPLORER_INPUTS)
def test_explorer_shows_the_reference_counts_and_alpha(explorer_page, labels, T):
    set_inputs(explorer_page, labels, T)
    assert text_of(explorer_page, ".ctc-explorer .cx-count") == str(explorer.path_count(labels, T))
    state = explorer_page.execute_script(
        "const s = CTCExplorer.instances[0].state; return [s.logProbs, s.ids];")
    log_probs, ids = np.array(state[0]), state[1]
    alpha = np.exp(ctc_forward(log_probs, ids))  # (T, 2U+1), the reference
    next_frame = explorer_page.find_element("css selector", ".ctc-explorer .cx-next")
    for t in range(1, T + 1):
        next_frame.click()
        assert text_of(explorer_page, ".ctc-explorer .cx-frame").strip() == f"t = {t} of {T}"
        shown = explorer_page.execute_script("""
            return [...document.querySelectorAll('.ctc-explorer .cx-alpha tr[data-s]')]
                .map(row => row.querySelector('.cx-alpha-value').textContent);""")
        assert len(shown) == 2 * len(labels) + 1
        for s, text in enumerate(shown):
            assert printed_matches(text, alpha[t - 1, s]), (labels, t, s + 1, text,
                                                            alpha[t - 1, s])
    probability = math.exp(-ctc_loss(log_probs, ids))
    assert printed_matches(text_of(explorer_page, ".ctc-explorer .cx-p"), probability)


@pytest.mark.book
@pytest.mark.slow
def test_explorer_collapses_a_clicked_path(explorer_page):
    set_inputs(explorer_page, "abb", 6)
    for t, s in enumerate((2, 4, 5, 6, 6, 7), start=1):  # a b ε b b ε
        explorer_page.find_element(
            "css selector", f'.ctc-explorer circle[data-t="{t}"][data-s="{s}"]').click()
    line = text_of(explorer_page, ".ctc-explorer .cx-path")
    assert "π = a b ε b b ε" in line and 'B(π) = "abb"' in line and "✓" in line
    # an illegal step (the forbidden skip b -> b) is refused with a reason
    explorer_page.find_element("css selector", ".ctc-explorer .cx-clear").click()
    for t, s in ((1, 2), (2, 4), (3, 4), (4, 6)):  # a b b, then skip to the second b
        explorer_page.find_element(
            "css selector", f'.ctc-explorer circle[data-t="{t}"][data-s="{s}"]').click()
    assert "No allowed step" in text_of(explorer_page, ".ctc-explorer .cx-path")


@pytest.mark.book
@pytest.mark.slow
def test_explorer_works_in_a_400px_window(explorer_page):
    # Headless Chromium keeps windows at least 500 px wide: emulate a 400 px phone screen instead.
    explorer_page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 400, "height": 900, "deviceScaleFactor": 1, "mobile": True})
    try:
        explorer_page.get(explorer_page.current_url)
        set_inputs(explorer_page, "hello", 10)
        layout = explorer_page.execute_script("""
            const root = document.querySelector('.ctc-explorer');
            const svg = root.querySelector('svg');
            return {inner: window.innerWidth, right: root.getBoundingClientRect().right,
                    svgRight: svg.getBoundingClientRect().right,
                    svgWidth: svg.getBoundingClientRect().width,
                    overflow: root.scrollWidth - root.clientWidth};""")
        assert layout["inner"] == 400, layout
        assert layout["right"] <= layout["inner"] and layout["svgRight"] <= layout["inner"]
        assert layout["overflow"] <= 0 and layout["svgWidth"] > 200, layout
        assert text_of(explorer_page, ".ctc-explorer .cx-count") == str(
            explorer.path_count("hello", 10))
        explorer_page.find_element(
            "css selector", '.ctc-explorer circle[data-t="1"][data-s="2"]').click()
        assert 'B(π) = "h"' in text_of(explorer_page, ".ctc-explorer .cx-path")
    finally:
        explorer_page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
