// MathJax: typeset only the math of the guide (pymdownx.arithmatex, generic mode: \( \) and \[ \]
// inside class "arithmatex") and of the tutorials' Markdown cells ($ and $$), nothing else.
function typesetMath() {
  const roots = [...document.querySelectorAll(".arithmatex, .jp-MarkdownOutput")];
  return roots.length ? MathJax.typesetPromise(roots) : Promise.resolve();
}

window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"], ["$", "$"]], displayMath: [["\\[", "\\]"], ["$$", "$$"]],
        processEscapes: true, processEnvironments: true},
  startup: {typeset: false, pageReady: () => MathJax.startup.defaultPageReady().then(typesetMath)}
};

// Material's instant navigation swaps pages without a reload: typeset each new page.
document$.subscribe(() => {
  if (window.MathJax && MathJax.typesetPromise) { MathJax.typesetClear(); typesetMath(); }
});
