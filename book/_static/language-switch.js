// The language switch in the page header: a link to this page in the other edition of the book.
// book/_ext/editions.py puts the target in <meta name="course-other-language">.
document.addEventListener("DOMContentLoaded", () => {
  const meta = document.querySelector('meta[name="course-other-language"]');
  if (!meta) return;
  const link = document.createElement("a");
  link.className = "btn btn-sm course-language-switch";
  link.href = meta.content;
  link.hreflang = meta.dataset.language.replace("_", "-");
  link.lang = link.hreflang;
  link.textContent = meta.dataset.label;
  link.title = meta.dataset.language === "en" ? "Read this page in English" : "阅读本页的中文版";
  const buttons = document.querySelector(".article-header-buttons");
  if (buttons) {
    buttons.prepend(link);
  } else {
    link.classList.add("course-language-switch-floating");
    document.body.prepend(link);
  }
});
