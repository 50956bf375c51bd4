"""The book's two editions and its assignment archives: a local Sphinx extension (``_config.yml``
loads it through ``sphinx: local_extensions``).

**Editions.** The public book (``make book``) shows no code of a graded function: a student could
copy it. The pages put that code in ``{only} instructor`` blocks, which only the instructor edition
(``make book-instructor``) renders. The environment variable ``COURSE_EDITION`` chooses:
``public`` (the default) or ``instructor``, which adds the Sphinx tag ``instructor``.

**Languages.** ``COURSE_LANGUAGE`` (``en``, the default, or ``zh_CN``; read by
:mod:`solutions.language`) chooses the language: ``make book-zh`` sets ``zh_CN``, and Sphinx's own
translation machinery replaces every paragraph by its translation from
``locales/zh_CN/LC_MESSAGES/<page>.po``. A paragraph with no translation is a build warning (so an
error under ``--warningiserror``), naming the page and the text. Each page links to the same page
in the other language (``_static/language-switch.js``), at the published layout: English at the
site's root, Chinese under ``zh/``.

**Assignment archives.** Each assignment's student folder ``notebooks/<id>/`` (the notebook and the
files its visible checks need) is zipped at build time into ``book/_assignments/<id>.zip``
(git-ignored), which the chapter's exercises page offers with ``{download}``. The archive holds the
folder as ``<id>/...``. It is rewritten only when its content changes, and its bytes depend only on
the files' names and contents, so concurrent builds write the same file.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

from solutions.language import language

logger = logging.getLogger(__name__)

EDITIONS = ("public", "instructor")
ROOT = Path(__file__).resolve().parents[2]
STUDENT_FOLDERS = ROOT / "notebooks"
ARCHIVES = ROOT / "book" / "_assignments"
# Files an editor or a run of the notebook leaves behind; not part of the assignment.
IGNORED_NAMES = ("__pycache__", ".ipynb_checkpoints", ".DS_Store")
# A fixed timestamp (zip's earliest) keeps the archive's bytes independent of file times.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def edition() -> str:
    """The edition that ``COURSE_EDITION`` asks for; ``ValueError`` naming it if unknown."""
    value = os.environ.get("COURSE_EDITION", "public") or "public"
    if value not in EDITIONS:
        raise ValueError(f"COURSE_EDITION: expected one of {EDITIONS}, got {value!r}")
    return value


def assignment_files(assignment: str) -> list[Path]:
    """The files of ``notebooks/<assignment>/`` that the archive holds, sorted."""
    folder = STUDENT_FOLDERS / assignment
    notebook = folder / f"{assignment}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"no student notebook {notebook} (python -m autograder release)")
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part in IGNORED_NAMES for part in p.relative_to(folder).parts))


def archive_bytes(assignment: str) -> bytes:
    """The zip archive of the assignment's student folder, with its files under ``<id>/``."""
    folder = STUDENT_FOLDERS / assignment
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in assignment_files(assignment):
            name = f"{assignment}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def write_archives(app: Sphinx) -> None:
    """``builder-inited``: (re)write ``book/_assignments/<id>.zip`` for every assignment."""
    from autograder.checks import ASSIGNMENTS

    ARCHIVES.mkdir(parents=True, exist_ok=True)
    for assignment in ASSIGNMENTS:
        target = ARCHIVES / f"{assignment}.zip"
        content = archive_bytes(assignment)
        if target.is_file() and target.read_bytes() == content:
            continue
        # Write beside the target and rename: a concurrent build never sees half an archive.
        with tempfile.NamedTemporaryFile(dir=ARCHIVES, suffix=".part", delete=False) as part:
            part.write(content)
        os.chmod(part.name, 0o644)
        os.replace(part.name, target)


# The other edition of each language, its folder relative to this one's root, and the link's text.
CHINESE_FOLDER = "zh/"  # the Chinese edition's folder in the published site
OTHER_LANGUAGE = {"en": ("zh_CN", CHINESE_FOLDER, "中文"), "zh_CN": ("en", "../", "English")}


def add_language_switch(app: Sphinx, pagename: str, templatename: str, context: dict,
                        doctree) -> None:
    """``html-page-context``: the URL of this page in the other language, for the header link."""
    other, folder, label = OTHER_LANGUAGE[app.config.language or "en"]
    up = "../" * pagename.count("/")
    target = f"{up}{folder}{pagename}.html"
    context["metatags"] = context.get("metatags", "") + (
        f'\n<meta name="course-other-language" content="{target}" data-language="{other}" '
        f'data-label="{label}">')


def published_url(repository: str) -> str:
    """The GitHub Pages address of the course published from ``repository`` (its GitHub URL,
    ``repository.url`` in _config.yml: the one place that names where the course lives)."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", repository)
    if match is None:
        raise ValueError(f"repository.url in _config.yml: expected https://github.com/OWNER/NAME, "
                         f"got {repository!r}")
    owner, name = match.groups()
    return f"https://{owner.lower()}.github.io/{name}/"


# The book's title and footer, which _config.yml gives in English (pages translate through their
# catalogues; these two are configuration).
SITE_TEXT = {
    "zh_CN": {"title": "序列模型", "footer": "文字采用 CC BY 4.0 许可，代码采用 MIT 许可。"
                                            "本书用 Jupyter Book 离线构建。"},
}


def configure_edition(app: Sphinx, config) -> None:
    """``config-inited``: the canonical URL of every page (in the edition's folder of the site),
    and the title and footer in the edition's language."""
    repository = config.html_theme_options.get("repository_url")
    if repository:
        folder = CHINESE_FOLDER if language() == "zh_CN" else ""
        config.html_baseurl = published_url(repository) + folder
    text = SITE_TEXT.get(language())
    if text:
        config.html_title = text["title"]
        config.html_theme_options["extra_footer"] = text["footer"]


class KeepFormulasAndOutputs(SphinxTransform):
    """Keep out of the catalogues what is not written text: displayed equations (the same in every
    language) and what the notebooks' code printed or displayed (tables of results, glued values),
    which changes with every run; the code writes those in the build's language itself
    (``solutions.language.tr``)."""

    default_priority = 10  # before Sphinx's Locale transform (20), which translates the page

    def apply(self) -> None:
        for node in self.document.findall(nodes.math_block):
            node["translatable"] = False
        for output in self.document.findall(_is_output):
            _keep_untranslated(output)


def keep_pasted_outputs_untranslated(app: Sphinx, config) -> None:
    """``config-inited``: what ``{glue:md}`` and ``{glue:figure}`` paste is a notebook's output
    (its code writes it in the build's language), not text for the catalogues, like the outputs
    of code cells."""
    from myst_nb.ext.glue.directives import PasteFigureDirective, PasteMarkdownDirective

    for name, directive in (("md", PasteMarkdownDirective), ("figure", PasteFigureDirective)):
        app.add_directive_to_domain("glue", name, _untranslated(directive), override=True)


def _untranslated(directive):
    class PastedOutput(directive):
        def run(self):
            pasted = super().run()
            for node in pasted:
                _keep_untranslated(node)
            return pasted

    return PastedOutput


# The notebook renderer (which holds the glued values) of each page read so far, by source path.
_GLUE_RENDERERS: dict[str, object] = {}


def translate_theme(app: Sphinx) -> None:
    """Load the themes' own messages ("Contents", "Download this page", ...) for the language
    just set: the themes registered their catalogues while the language was still English."""
    import pydata_sphinx_theme
    import sphinx_book_theme

    app.add_message_catalog("sphinx", Path(pydata_sphinx_theme.__file__).parent / "locale")
    app.add_message_catalog(
        sphinx_book_theme.MESSAGE_CATALOG_NAME,
        os.path.join(sphinx_book_theme.get_html_theme_path(), "static", "locales"))


def find_glued_values_of_translations() -> None:
    """Let myst-nb's glue roles and directives, in a translated paragraph, read the glued values
    of the page it belongs to: Sphinx parses each translation as a small document of its own
    (source ``<page>:<line>:<translated>``), without the page's values."""
    from myst_nb.ext.glue import directives, roles, utils

    original = utils.retrieve_glue_data

    def retrieve_glue_data(document, key):
        source = str(document.get("source", ""))
        try:
            found = original(document, key)
        except utils.RetrievalError:
            renderer = _GLUE_RENDERERS.get(source.rsplit(":", 2)[0])
            if not source.endswith(":<translated>") or renderer is None:
                raise
            return original({"nb_renderer": renderer}, key)  # reads only document["nb_renderer"]
        # The page's own roles come first (its English text is parsed before any translation).
        _GLUE_RENDERERS[source] = found.nb_renderer
        return found

    for module in (utils, roles, directives):
        if getattr(module, "retrieve_glue_data", None) is original:
            module.retrieve_glue_data = retrieve_glue_data


def _keep_untranslated(node) -> None:
    """Mark ``node`` and everything in it as no message for the catalogues."""
    for element in node.findall(nodes.Element):
        element["translatable"] = False


def _is_output(node) -> bool:
    return isinstance(node, nodes.container) and (
        node.get("nb_element") in ("cell_code_output", "mime_bundle")
        or "cell_output" in node.get("classes", []))


class TranslateInsertedToctrees(SphinxTransform):
    """Translate the captions of the toctrees that sphinx-external-toc inserts from _toc.yml (its
    transform runs after Sphinx's Locale transform, so Sphinx never sees them)."""

    default_priority = 150  # after sphinx-external-toc's InsertToctrees (100)

    def apply(self) -> None:
        if (self.config.language or "en") == "en":
            return
        from sphinx.locale import init as init_locale
        from sphinx.util.i18n import docname_to_domain

        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        folders = [os.path.join(self.env.srcdir, d) for d in self.config.locale_dirs]
        catalogue, found = init_locale(folders, self.config.language, domain)
        if not found:
            return
        for toctree in self.document.findall(addnodes.toctree):
            caption = toctree.get("caption")
            if caption and catalogue.gettext(caption) != caption:
                toctree["rawcaption"] = caption
                toctree["caption"] = catalogue.gettext(caption)


class UntranslatedText(SphinxTransform):
    """In a translated build, warn about every paragraph (or title, list item, ...) that kept its
    English text: its message is missing from the page's catalogue, or the English changed since
    the translation was made (the catalogue still has the old text)."""

    default_priority = 999  # after Sphinx's Locale transform (20) and its fuzzy handling

    def apply(self) -> None:
        if (self.config.language or "en") == "en":
            return
        from sphinx.util.nodes import extract_messages

        for node, message in extract_messages(self.document):
            # An image's alt text is translated in place, without the "translated" mark; a
            # toctree's caption and entries too.
            if (node.get("translated") or node.get("translatable") is False
                    or _CJK.search(message) or not _has_words(message)):
                continue
            if isinstance(node, addnodes.toctree) and message != node.get("caption") and all(
                    title != message for title, _ in node.get("entries", [])):
                continue
            logger.warning(f"untranslated text ({self.config.language}): {message[:120]!r}",
                           location=node, type="i18n", subtype="untranslated")


_CJK = re.compile(r"[\u3400-\u9fff]")


def _has_words(message: str) -> bool:
    """Whether a message holds English words outside math, code and roles (a message that is
    only a formula, a citation or a name needs no translation)."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|``.*?``|`[^`]*`|\{[\w:-]+\}|<[^>]*>|https?://\S+", " ",
                  message, flags=re.DOTALL)
    return len(re.findall(r"[A-Za-z]{3,}", text)) >= 2


def setup(app: Sphinx) -> dict:
    if edition() == "instructor":
        app.tags.add("instructor")
    if language() != "en":
        app.config.language = language()
        # Sphinx loaded its own messages (the theme's "Contents", "Search", ...) before any
        # extension ran: load them again for the language just set.
        app._init_i18n()
        translate_theme(app)
        find_glued_values_of_translations()
    app.add_transform(KeepFormulasAndOutputs)
    app.add_transform(TranslateInsertedToctrees)
    app.add_transform(UntranslatedText)
    app.add_js_file("language-switch.js")
    app.connect("html-page-context", add_language_switch)
    app.connect("config-inited", configure_edition)
    app.connect("config-inited", keep_pasted_outputs_untranslated)
    app.connect("builder-inited", write_archives)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
